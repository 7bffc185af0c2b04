// The weft dashboard: plain JavaScript, no dependencies. It reads the control
// plane's JSON API (the same calls `weft top` and `weft status` make) with
// the admin token, which it takes once from the URL fragment (`weft
// dashboard` prints such a link; a fragment never reaches a server or its
// logs) or from the login form, and keeps in this tab's sessionStorage.
'use strict';
(() => {
  const TOKEN_KEY = 'weft.token';
  const SVG = 'http://www.w3.org/2000/svg';
  const state = { token: null, ns: '', window: '1m', timer: null, gen: 0, namespaces: new Set() };
  const $ = (id) => document.getElementById(id);

  // --- DOM helpers: text always goes in as text, never as HTML ----------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    return fill(e, attrs, kids);
  }
  function sv(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG, tag);
    return fill(e, attrs, kids);
  }
  function fill(e, attrs, kids) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.setAttribute('class', v);
      else if (k === 'style') e.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike style attributes
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids.flat()) {
      if (k === undefined || k === null || k === false) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }

  // --- formatting ---------------------------------------------------------
  const fmtRate = (v) => v == null ? '–' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  const fmtPct = (v) => v == null ? '–' : (v * 100).toFixed(v >= 0.999 || v === 0 ? 0 : 1) + '%';
  const fmtMs = (v) => v == null ? '–' : v >= 1000 ? (v / 1000).toFixed(2) + 's' : v >= 10 ? v.toFixed(0) + 'ms' : v.toFixed(1) + 'ms';
  const fmtBytes = (v) => v >= 1 << 20 ? (v / (1 << 20)).toFixed(1) + ' MiB' : v >= 1024 ? (v / 1024).toFixed(1) + ' KiB' : v + ' B';
  function health(sr) {
    if (sr == null) return 'idle';
    return sr >= 0.99 ? 'ok' : sr >= 0.95 ? 'warn' : 'bad';
  }
  function ago(t) {
    if (!t) return '–';
    const s = (Date.now() - Date.parse(t)) / 1000;
    if (s < 0) return 'now';
    if (s < 90) return Math.round(s) + 's ago';
    if (s < 5400) return Math.round(s / 60) + 'm ago';
    return Math.round(s / 3600) + 'h ago';
  }
  function nodeLabel(id) {
    if (id === 'unknown') return 'unknown';
    return id.startsWith('workload:') ? id.slice(9) + ' (workload)' : id;
  }
  function serviceLink(id) {
    if (id.startsWith('workload:') || id === 'unknown') return nodeLabel(id);
    return el('a', { href: '#/service/' + id }, id);
  }

  // --- the API ------------------------------------------------------------
  class AuthError extends Error {}
  async function api(path) {
    const r = await fetch(path, { headers: { Authorization: 'Bearer ' + state.token }, cache: 'no-store' });
    if (r.status === 401) throw new AuthError('the admin token was refused');
    let body;
    try { body = await r.json(); } catch (e) { throw new Error(r.status + ' ' + r.statusText); }
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }
  const q = (params) => {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) u.set(k, v);
    const s = u.toString();
    return s ? '?' + s : '';
  };

  // --- token --------------------------------------------------------------
  function takeToken() {
    const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      // Out of the address bar and the history.
      history.replaceState(null, '', location.pathname + location.search + '#/graph');
    }
    state.token = sessionStorage.getItem(TOKEN_KEY);
  }
  function showLogin(msg) {
    clearTimeout(state.timer);
    $('view').replaceChildren();
    $('login').hidden = false;
    $('login-error').textContent = msg || '';
    $('token').focus();
  }

  // --- routing and refresh ---------------------------------------------------
  const views = {
    graph: { load: () => api('/api/v1/graph' + q({ namespace: state.ns, window: state.window })), render: renderGraph, every: 2000 },
    services: { load: () => api('/api/v1/graph' + q({ namespace: state.ns, window: state.window })), render: renderServices, every: 2000 },
    service: {
      load: (ns, name) => api('/api/v1/services/' + encodeURIComponent(ns) + '/' + encodeURIComponent(name) + '/metrics' +
        q({ window: state.window === '1m' ? '5m' : state.window, step: state.window === '15m' ? '15s' : '5s' })),
      render: renderService, every: 5000,
    },
    proxies: { load: () => api('/api/v1/proxies'), render: renderProxies, every: 3000 },
    resources: { load: () => api('/api/v1/resources'), render: renderResources, every: 0 },
  };

  function route() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    const name = views[parts[0]] ? parts[0] : 'graph';
    return { name, args: parts.slice(1) };
  }

  async function refresh() {
    clearTimeout(state.timer);
    if (!state.token) return showLogin();
    $('login').hidden = true;
    const gen = ++state.gen;
    const { name, args } = route();
    for (const a of document.querySelectorAll('nav a')) {
      a.classList.toggle('active', a.dataset.view === name || (name === 'service' && a.dataset.view === 'services'));
    }
    const v = views[name];
    try {
      const data = await v.load(...args);
      if (gen !== state.gen) return; // navigated meanwhile
      const keepScroll = window.scrollY;
      $('view').replaceChildren(v.render(data, ...args));
      window.scrollTo(0, keepScroll);
      setStatus('updated ' + new Date().toLocaleTimeString(), false);
      noteNamespaces(data);
    } catch (e) {
      if (gen !== state.gen) return;
      if (e instanceof AuthError) {
        sessionStorage.removeItem(TOKEN_KEY);
        state.token = null;
        return showLogin('The control plane refused the token: ' + e.message + '.');
      }
      setStatus(e.message, true);
    }
    if (v.every && gen === state.gen) state.timer = setTimeout(refresh, v.every);
  }
  function setStatus(text, err) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('err', !!err);
  }
  function noteNamespaces(data) {
    const add = (ns) => { if (ns && !state.namespaces.has(ns)) { state.namespaces.add(ns); syncNamespaces(); } };
    (data.nodes || []).forEach((n) => add(n.namespace));
    (data.items || []).forEach((i) => add(i.namespace));
    (data.proxies || []).forEach((p) => add(p.namespace));
  }
  function syncNamespaces() {
    const sel = $('ns');
    const cur = sel.value;
    sel.replaceChildren(el('option', { value: '' }, 'all'), ...[...state.namespaces].sort().map((n) => el('option', { value: n }, n)));
    sel.value = cur;
  }

  // --- graph ----------------------------------------------------------------
  const NODE_W = 190, NODE_H = 52, COL_W = 420, ROW_H = 100, PAD = 40;

  function layout(nodes, edges) {
    const ids = nodes.map((n) => n.id);
    const rank = Object.fromEntries(ids.map((id) => [id, 0]));
    const linked = new Set();
    for (const e of edges) { linked.add(e.source); linked.add(e.target); }
    // Longest path from the callers nobody calls, bounded so cycles end.
    for (let i = 0; i < ids.length; i++) {
      let moved = false;
      for (const e of edges) {
        if (e.source === e.target) continue;
        const r = rank[e.source] + 1;
        if (r < ids.length && rank[e.target] < r) { rank[e.target] = r; moved = true; }
      }
      if (!moved) break;
    }
    const cols = [];
    const idle = [];
    for (const n of nodes) {
      if (!linked.has(n.id)) { idle.push(n); continue; }
      (cols[rank[n.id]] = cols[rank[n.id]] || []).push(n);
    }
    const compact = cols.filter(Boolean);
    if (idle.length) compact.push(idle); // services without traffic: a column of their own
    const pos = {};
    compact.forEach((col, ci) => {
      // Order by the mean row of the callers, so edges cross less.
      const key = (n) => {
        const ys = edges.filter((e) => e.target === n.id && pos[e.source]).map((e) => pos[e.source].y);
        return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : Infinity;
      };
      col.sort((a, b) => (key(a) - key(b)) || a.id.localeCompare(b.id));
      col.forEach((n, ri) => { pos[n.id] = { x: PAD + ci * COL_W, y: PAD + ri * ROW_H }; });
    });
    const rows = Math.max(1, ...compact.map((c) => c.length));
    return { pos, width: PAD * 2 + Math.max(0, compact.length - 1) * COL_W + NODE_W, height: PAD * 2 + (rows - 1) * ROW_H + NODE_H + 20 };
  }

  function bezierMid(p0, p1, p2, p3) {
    const t = 0.5, u = 1 - t;
    return {
      x: u * u * u * p0.x + 3 * u * u * t * p1.x + 3 * u * t * t * p2.x + t * t * t * p3.x,
      y: u * u * u * p0.y + 3 * u * u * t * p1.y + 3 * u * t * t * p2.y + t * t * t * p3.y,
    };
  }

  function graphSVG(g) {
    const { pos, width, height } = layout(g.nodes, g.edges);
    const svg = sv('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'service graph' });
    const defs = sv('defs');
    for (const h of ['ok', 'warn', 'bad', 'idle']) {
      defs.append(sv('marker', { id: 'arrow-' + h, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
        sv('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow-' + h, fill: getComputedStyle(document.documentElement).getPropertyValue('--' + h).trim() })));
    }
    svg.append(defs);
    const edgeLayer = sv('g', { class: 'edges' });
    const labelLayer = sv('g', { class: 'labels' });
    for (const e of g.edges) {
      const a = pos[e.source], b = pos[e.target];
      if (!a || !b) continue;
      const h = health(e.successRate);
      let d, mid;
      if (e.source === e.target) {
        const x = a.x + NODE_W / 2, y = a.y;
        d = `M${x - 20},${y} C${x - 40},${y - 50} ${x + 40},${y - 50} ${x + 20},${y}`;
        mid = { x, y: y - 38 };
      } else if (b.x > a.x) {
        const p0 = { x: a.x + NODE_W, y: a.y + NODE_H / 2 }, p3 = { x: b.x - 2, y: b.y + NODE_H / 2 };
        const dx = (p3.x - p0.x) / 2;
        const p1 = { x: p0.x + dx, y: p0.y }, p2 = { x: p3.x - dx, y: p3.y };
        d = `M${p0.x},${p0.y} C${p1.x},${p1.y} ${p2.x},${p2.y} ${p3.x},${p3.y}`;
        mid = bezierMid(p0, p1, p2, p3);
      } else {
        // A call back to an earlier column: round below.
        const p0 = { x: a.x + NODE_W / 2, y: a.y + NODE_H }, p3 = { x: b.x + NODE_W / 2, y: b.y + NODE_H + 2 };
        const low = Math.max(p0.y, p3.y) + 60;
        const p1 = { x: p0.x, y: low }, p2 = { x: p3.x, y: low };
        d = `M${p0.x},${p0.y} C${p1.x},${p1.y} ${p2.x},${p2.y} ${p3.x},${p3.y}`;
        mid = bezierMid(p0, p1, p2, p3);
      }
      const w = 1.5 + Math.min(6, Math.log10(1 + (e.rps || 0)) * 2.5);
      const label = e.requests ? `${fmtRate(e.rps)} rps · ${fmtPct(e.successRate)} · p99 ${fmtMs(e.p99)}` :
        e.tcp ? `${fmtRate(e.tcp.connsPerSec)} conn/s · ${fmtBytes(e.tcp.sentBytes + e.tcp.receivedBytes)}` : 'idle';
      const ge = sv('g', {
        class: 'edge ' + h, 'data-source': e.source, 'data-target': e.target, 'data-rps': e.rps, 'data-requests': e.requests,
        'data-success-rate': e.successRate == null ? '' : e.successRate, 'data-p99': e.p99 == null ? '' : e.p99,
      }, sv('title', {}, `${nodeLabel(e.source)} → ${nodeLabel(e.target)}: ${e.requests} requests, ${e.errors} errors`),
      sv('path', { d, 'stroke-width': w.toFixed(1), 'marker-end': `url(#arrow-${h})` }));
      edgeLayer.append(ge);
      labelLayer.append(sv('g', { class: 'edge-label' }, sv('text', { x: mid.x, y: mid.y - 6, 'text-anchor': 'middle', class: 'edge-text', 'data-source': e.source, 'data-target': e.target }, label)));
    }
    svg.append(edgeLayer);
    const nodeLayer = sv('g', { class: 'nodes' });
    const out = {};
    for (const e of g.edges) out[e.source] = (out[e.source] || 0) + (e.rps || 0);
    for (const n of g.nodes) {
      const p = pos[n.id];
      if (!p) continue;
      const sr = n.inbound.requests ? n.inbound.successRate : null;
      const h = n.inbound.requests ? health(sr) : 'idle';
      const sub = n.inbound.requests ? `${fmtRate(n.inbound.rps)} rps in · ${fmtPct(sr)}` :
        out[n.id] ? `${fmtRate(out[n.id])} rps out` :
          n.kind === 'service' ? `${n.workloads} workload${n.workloads === 1 ? '' : 's'}` : n.kind;
      const ng = sv('g', { class: `node ${h} ${n.kind}`, 'data-node-id': n.id, transform: `translate(${p.x},${p.y})`, tabindex: 0 },
        sv('title', {}, nodeLabel(n.id)),
        sv('rect', { width: NODE_W, height: NODE_H, rx: 8 }),
        sv('text', { x: 12, y: 21, 'font-weight': 600 }, n.name.length > 22 ? n.name.slice(0, 21) + '…' : n.name),
        sv('text', { x: 12, y: 39, class: 'sub' }, (n.namespace ? n.namespace + ' · ' : '') + sub));
      if (n.kind === 'service') {
        const go = () => { location.hash = '#/service/' + n.namespace + '/' + n.name; };
        ng.addEventListener('click', go);
        ng.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') go(); });
      }
      nodeLayer.append(ng);
    }
    svg.append(nodeLayer, labelLayer);
    return svg;
  }

  function renderGraph(g) {
    const active = g.edges.filter((e) => e.requests || e.tcp);
    return el('div', {},
      el('h1', {}, 'Service graph'),
      el('p', { class: 'muted' }, `Who calls whom over the last ${g.window}, as the callers' proxies saw it` +
        (g.replica ? ` (replica ${g.replica})` : '') + '. Click a service for its metrics.'),
      el('div', { id: 'graph' }, g.nodes.length ? graphSVG(g) : el('div', { class: 'empty' }, 'No services yet: weft apply -f a Service, start proxies with --control.')),
      el('h2', {}, 'Edges'),
      active.length ? edgeTable(active) : el('p', { class: 'muted' }, 'No traffic in this window.'));
  }

  function edgeTable(edges) {
    return el('table', {},
      el('thead', {}, el('tr', {}, ['from', 'to', 'rps', 'success', 'p50', 'p95', 'p99', 'requests', 'TCP'].map((h, i) => el('th', { class: i > 1 ? 'num' : '' }, h)))),
      el('tbody', {}, edges.map((e) => el('tr', {},
        el('td', {}, serviceLink(e.source)), el('td', {}, serviceLink(e.target)),
        el('td', { class: 'num' }, fmtRate(e.rps)),
        el('td', { class: 'num' }, el('span', { class: 'dot bg-' + health(e.successRate) }), fmtPct(e.successRate)),
        el('td', { class: 'num' }, fmtMs(e.p50)), el('td', { class: 'num' }, fmtMs(e.p95)), el('td', { class: 'num' }, fmtMs(e.p99)),
        el('td', { class: 'num' }, e.requests),
        el('td', { class: 'num' }, e.tcp ? `${e.tcp.opened} conns, ${fmtBytes(e.tcp.sentBytes + e.tcp.receivedBytes)}` : '–')))));
  }

  // --- services (like weft top) --------------------------------------------------
  function renderServices(g) {
    const svcs = g.nodes.filter((n) => n.kind === 'service');
    return el('div', {},
      el('h1', {}, 'Services'),
      el('p', { class: 'muted' }, `Requests into each service over the last ${g.window}.`),
      el('table', {},
        el('thead', {}, el('tr', {}, ['service', 'workloads', 'rps', 'success', 'p50', 'p95', 'p99', 'requests'].map((h, i) => el('th', { class: i > 0 ? 'num' : '' }, h)))),
        el('tbody', {}, svcs.map((n) => {
          const i = n.inbound;
          return el('tr', {},
            el('td', {}, el('a', { href: `#/service/${n.namespace}/${n.name}` }, n.id)),
            el('td', { class: 'num' }, n.workloads),
            el('td', { class: 'num' }, fmtRate(i.rps)),
            el('td', { class: 'num' }, el('span', { class: 'dot bg-' + health(i.requests ? i.successRate : null) }), fmtPct(i.successRate)),
            el('td', { class: 'num' }, fmtMs(i.p50)), el('td', { class: 'num' }, fmtMs(i.p95)), el('td', { class: 'num' }, fmtMs(i.p99)),
            el('td', { class: 'num' }, i.requests));
        }))));
  }

  // --- one service ----------------------------------------------------------------
  const COLORS = ['#3b5bdb', '#d9a21b', '#d64545', '#2e9d57', '#7048e8'];

  // chart draws line series over time: [{name, points: [{t, v}]}], v null
  // for a gap.
  function chart(title, series, opts) {
    const W = 480, H = 150, L = 44, R = 8, T = 8, B = 20;
    const all = series.flatMap((s) => s.points);
    const ts = all.map((p) => Date.parse(p.t));
    const t0 = Math.min(...ts), t1 = Math.max(...ts);
    const vs = all.map((p) => p.v).filter((v) => v != null);
    let lo = opts.min != null ? opts.min : Math.min(0, ...vs), hi = opts.max != null ? opts.max : Math.max(...vs, opts.floor || 1);
    if (hi === lo) hi = lo + 1;
    const x = (t) => L + (t1 === t0 ? 0 : (t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
    const svg = sv('svg', { viewBox: `0 0 ${W} ${H}` });
    for (let i = 0; i <= 2; i++) {
      const v = lo + (hi - lo) * i / 2;
      svg.append(sv('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#e5e8ee' }),
        sv('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 10, fill: '#6b7385' }, opts.fmt(v)));
    }
    if (isFinite(t0)) {
      svg.append(sv('text', { x: L, y: H - 4, 'font-size': 10, fill: '#6b7385' }, new Date(t0).toLocaleTimeString()),
        sv('text', { x: W - R, y: H - 4, 'font-size': 10, fill: '#6b7385', 'text-anchor': 'end' }, new Date(t1).toLocaleTimeString()));
    }
    series.forEach((s, i) => {
      let d = '';
      let pen = false;
      for (const p of s.points) {
        if (p.v == null) { pen = false; continue; }
        d += (pen ? 'L' : 'M') + x(Date.parse(p.t)).toFixed(1) + ',' + y(p.v).toFixed(1) + ' ';
        pen = true;
      }
      const color = s.color || COLORS[i % COLORS.length];
      svg.append(sv('path', { d, fill: 'none', stroke: color, 'stroke-width': 1.8 }));
      // Points without a neighbour draw no line: mark every point.
      for (const p of s.points) {
        if (p.v != null) svg.append(sv('circle', { cx: x(Date.parse(p.t)).toFixed(1), cy: y(p.v).toFixed(1), r: 1.8, fill: color }));
      }
    });
    return el('div', { class: 'chart panel' }, el('h3', {}, title), svg,
      series.length > 1 ? el('div', { class: 'legend' }, series.map((s, i) => el('span', {}, el('span', { class: 'dot', style: `background:${s.color || COLORS[i % COLORS.length]}` }), s.name))) : null);
  }

  function sparkline(points) {
    const W = 120, H = 24;
    const vs = points.map((p) => p.rps);
    const hi = Math.max(...vs, 0.001);
    const d = points.map((p, i) => (i ? 'L' : 'M') + (points.length > 1 ? i / (points.length - 1) * W : 0).toFixed(1) + ',' + (H - 2 - p.rps / hi * (H - 4)).toFixed(1)).join(' ');
    return sv('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}` }, sv('path', { d, fill: 'none', stroke: '#3b5bdb', 'stroke-width': 1.5 }));
  }

  function card(k, v, cls) {
    return el('div', { class: 'card' }, el('div', { class: 'v ' + (cls || '') }, v), el('div', { class: 'k' }, k));
  }

  function renderService(m) {
    const g = m.golden;
    const pts = m.series;
    return el('div', {},
      el('h1', {}, `${m.namespace}/${m.name}`),
      m.serviceExists ? null : el('p', { class: 'error' }, 'No Service of this name is applied; these are the numbers callers reported.'),
      el('div', { class: 'cards' },
        card('requests / s', fmtRate(g.rps)), card('success', fmtPct(g.successRate), health(g.requests ? g.successRate : null)),
        card('p50', fmtMs(g.p50)), card('p95', fmtMs(g.p95)), card('p99', fmtMs(g.p99)), card(`requests in ${m.window}`, g.requests)),
      el('h2', {}, 'Over time'),
      el('div', { class: 'charts' },
        chart('Requests per second', [{ name: 'rps', points: pts.map((p) => ({ t: p.t, v: p.rps })) }], { fmt: fmtRate, min: 0 }),
        chart('Success rate', [{ name: 'success', color: '#2e9d57', points: pts.map((p) => ({ t: p.t, v: p.successRate })) }], { fmt: fmtPct, min: 0, max: 1 }),
        chart('Latency', ['p50', 'p95', 'p99'].map((q, i) => ({ name: q, color: COLORS[i], points: pts.map((p) => ({ t: p.t, v: p[q] })) })), { fmt: fmtMs, min: 0 })),
      el('h2', {}, 'Routes'),
      m.routes.length ? el('table', {},
        el('thead', {}, el('tr', {}, ['route', 'rps over time', 'rps', 'success', 'p50', 'p95', 'p99', 'requests'].map((h, i) => el('th', { class: i > 1 ? 'num' : '' }, h)))),
        el('tbody', {}, m.routes.map((r) => el('tr', {},
          el('td', {}, r.route || el('span', { class: 'muted' }, '(no route rule)')), el('td', {}, sparkline(r.series)),
          el('td', { class: 'num' }, fmtRate(r.golden.rps)),
          el('td', { class: 'num' }, el('span', { class: 'dot bg-' + health(r.golden.successRate) }), fmtPct(r.golden.successRate)),
          el('td', { class: 'num' }, fmtMs(r.golden.p50)), el('td', { class: 'num' }, fmtMs(r.golden.p95)), el('td', { class: 'num' }, fmtMs(r.golden.p99)),
          el('td', { class: 'num' }, r.golden.requests))))) : el('p', { class: 'muted' }, 'No requests in this window.'),
      el('h2', {}, 'Callers'),
      m.callers.length ? edgeTable(m.callers) : el('p', { class: 'muted' }, 'Nobody called it in this window.'),
      el('h2', {}, 'Calls'),
      m.calls.length ? edgeTable(m.calls) : el('p', { class: 'muted' }, 'It called nothing in this window (or its proxies do not report).'),
      el('h2', {}, 'Workloads'),
      m.workloads.length ? el('table', {},
        el('thead', {}, el('tr', {}, ['workload', 'address', 'zone', 'labels', 'source'].map((h) => el('th', {}, h)))),
        el('tbody', {}, m.workloads.map((w) => el('tr', {},
          el('td', {}, `${w.namespace}/${w.name}`), el('td', {}, w.address || '–'), el('td', {}, w.zone || '–'),
          el('td', { class: 'wrap' }, Object.entries(w.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ')),
          el('td', {}, w.registered ? 'registered by its proxy' : 'applied'))))) : el('p', { class: 'muted' }, 'The service selects no workload.'));
  }

  // --- proxies -------------------------------------------------------------------
  function renderProxies(r) {
    return el('div', {},
      el('h1', {}, 'Proxies'),
      r.error ? el('p', { class: 'error' }, r.error) : null,
      r.proxies.length ? el('table', {},
        el('thead', {}, el('tr', {}, ['proxy', 'replica', 'address', 'connected', 'config sent', 'applied', 'last NACK', 'telemetry'].map((h) => el('th', {}, h)))),
        el('tbody', {}, r.proxies.map((p) => {
          const inSync = p.versionSent && p.versionAcked === p.versionSent;
          const t = p.telemetry;
          return el('tr', { 'data-proxy': `${p.namespace}/${p.name}` },
            el('td', {}, `${p.namespace}/${p.name}`), el('td', {}, p.replica || '–'), el('td', {}, p.address || '–'),
            el('td', {}, ago(p.connectedSince)),
            el('td', {}, p.versionSent || '–', p.services ? el('span', { class: 'muted' }, ` (${p.services} services)`) : null),
            el('td', {}, el('span', { class: 'dot bg-' + (inSync ? 'ok' : p.versionSent ? 'warn' : 'idle') }), p.versionAcked || '–'),
            el('td', { class: 'wrap' }, p.nackVersion ? el('span', { class: 'bad' }, `${p.nackVersion}: ${p.nackError} (${ago(p.nackedAt)})`) : '–'),
            el('td', {}, t && t.connected ? `${t.reports} reports, last ${ago(t.lastReport)}` : el('span', { class: 'muted' }, 'not reporting here')));
        }))) : el('p', { class: 'muted' }, 'No proxy is connected.'));
  }

  // --- resources -----------------------------------------------------------------
  function renderResources(r) {
    const items = r.items.filter((i) => !state.ns || i.namespace === state.ns);
    return el('div', {},
      el('h1', {}, 'Resources'),
      el('p', { class: 'muted' }, `As applied (store revision ${r.revision}). `, el('a', { href: '#', onclick: (e) => { e.preventDefault(); refresh(); } }, 'Reload')),
      items.length ? el('table', {},
        el('thead', {}, el('tr', {}, ['kind', 'namespace', 'name', 'version', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, items.map((i) => el('tr', {},
          el('td', {}, i.kind), el('td', {}, i.namespace), el('td', {}, i.name), el('td', {}, i.resourceVersion, i.registered ? el('span', { class: 'muted' }, ' (registered)') : null),
          el('td', { class: 'wrap' }, el('details', {}, el('summary', {}, 'show'), el('pre', { class: 'json' }, JSON.stringify(i.object, null, 2)))))))) :
        el('p', { class: 'muted' }, 'Nothing applied.'));
  }

  // --- start ---------------------------------------------------------------------
  function start() {
    takeToken();
    $('login-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const t = $('token').value.trim();
      if (!t) return;
      sessionStorage.setItem(TOKEN_KEY, t);
      state.token = t;
      $('token').value = '';
      refresh();
    });
    $('logout').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); state.token = null; showLogin(); });
    $('ns').addEventListener('change', (e) => { state.ns = e.target.value; refresh(); });
    $('window').addEventListener('change', (e) => { state.window = e.target.value; refresh(); });
    window.addEventListener('hashchange', () => { takeToken(); refresh(); });
    refresh();
  }
  start();
})();

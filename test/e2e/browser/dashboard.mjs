// Opens the weft dashboard in Debian's headless Chromium, waits until the
// service graph shows an edge with a non-zero request rate, checks what a
// person would see, and saves a screenshot. Run by test/e2e/dashboard_test.go:
//
//   node dashboard.mjs URL SOURCE TARGET OUT.png
//
// It prints one JSON line with what it found; a failure exits non-zero with
// the reason on stderr.
import { chromium } from 'playwright-core';

const [url, source, target, out] = process.argv.slice(2);
if (!url || !source || !target || !out) {
  console.error('usage: node dashboard.mjs URL SOURCE TARGET OUT.png');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));

  await page.goto(url, { waitUntil: 'load' });
  const edge = `g.edge[data-source="${source}"][data-target="${target}"]`;
  await page.waitForFunction((sel) => {
    const e = document.querySelector(sel);
    return e && parseFloat(e.dataset.rps) > 0;
  }, edge, { timeout: 20000 });

  const found = await page.evaluate(({ sel, source, target }) => {
    const e = document.querySelector(sel);
    const label = [...document.querySelectorAll('text.edge-text')].find((t) => t.dataset.source === source && t.dataset.target === target);
    return {
      rps: parseFloat(e.dataset.rps),
      requests: parseInt(e.dataset.requests, 10),
      successRate: e.dataset.successRate,
      edgeClass: e.getAttribute('class'),
      edgeLabel: label ? label.textContent : '',
      nodes: [...document.querySelectorAll('g.node')].map((n) => n.dataset.nodeId),
      address: location.href,
      tokenInStorage: !!sessionStorage.getItem('weft.token'),
    };
  }, { sel: edge, source, target });
  found.requests_seen = requests;
  await page.screenshot({ path: out, fullPage: true });
  // The service page of the target draws its charts.
  await page.click(`g.node[data-node-id="${target}"]`);
  await page.waitForSelector('.chart svg path', { timeout: 10000 });
  found.serviceHeading = await page.textContent('#view h1');
  await page.screenshot({ path: out.replace(/\.png$/, '-service.png'), fullPage: true });
  // The proxies, with their config versions, and the applied resources.
  await page.evaluate(() => { location.hash = '#/proxies'; });
  await page.waitForSelector('tr[data-proxy]', { timeout: 10000 });
  found.proxies = await page.$$eval('tr[data-proxy]', (rows) => rows.map((r) => r.innerText.replace(/\s+/g, ' ')));
  await page.evaluate(() => { location.hash = '#/resources'; });
  await page.waitForFunction(() => document.querySelector('#view h1')?.textContent === 'Resources' && document.querySelectorAll('#view tbody tr').length > 0, null, { timeout: 10000 });
  found.resources = await page.$$eval('#view tbody tr', (rows) => rows.map((r) => r.cells[0].innerText + ' ' + r.cells[2].innerText));
  found.problems = problems;
  console.log(JSON.stringify(found));
} catch (e) {
  console.error(e && e.stack || String(e));
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);

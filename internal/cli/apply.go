package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"weft.dev/weft/internal/control/api"
)

// File is one input file: its name for error messages and its bytes.
type File struct {
	Name string
	Data []byte
}

// ReadFiles reads the -f arguments: a file, a directory (its .yaml, .yml
// and .json files, sorted; with recursive, its subdirectories' too) or
// "-" for stdin.
func ReadFiles(paths []string, recursive bool, stdin io.Reader) ([]File, error) {
	if len(paths) == 0 {
		return nil, errors.New("no input: pass -f FILE, -f DIR or -f -")
	}
	var files []File
	for _, p := range paths {
		if p == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			files = append(files, File{"<stdin>", data})
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			files = append(files, File{p, data})
			continue
		}
		var names []string
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && !recursive {
					return filepath.SkipDir
				}
				return nil
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				names = append(names, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%s: no .yaml, .yml or .json files", p)
		}
		sort.Strings(names)
		for _, n := range names {
			data, err := os.ReadFile(n)
			if err != nil {
				return nil, err
			}
			files = append(files, File{n, data})
		}
	}
	return files, nil
}

// multipartBody puts every file in one request, so the control plane
// applies them all or none and still names the file in errors.
func multipartBody(files []File) (contentType string, body io.Reader, err error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range files {
		w, err := mw.CreateFormFile("file", f.Name)
		if err != nil {
			return "", nil, err
		}
		w.Write(f.Data)
	}
	if err := mw.Close(); err != nil {
		return "", nil, err
	}
	return mw.FormDataContentType(), &buf, nil
}

// Apply sends files in one all-or-nothing apply and prints one line per
// object: "service/reviews created|configured|unchanged".
func (c *Client) Apply(ctx context.Context, files []File, out io.Writer) error {
	ct, body, err := multipartBody(files)
	if err != nil {
		return err
	}
	var resp api.ApplyResponse
	if err := c.do(ctx, "POST", "/api/v1/apply", nil, ct, body, &resp); err != nil {
		return err
	}
	printResults(out, resp.Results)
	return nil
}

func printResults(out io.Writer, rs []api.Result) {
	for _, r := range rs {
		fmt.Fprintf(out, "%s %s\n", objectRef(r.Kind, r.Namespace, r.Name), r.Action)
	}
}

// objectRef is kubectl's "kind/name", with the namespace when it is not
// the default one.
func objectRef(kind, ns, name string) string {
	ref := strings.ToLower(kind) + "/" + name
	if ns != "" && ns != "default" {
		ref += " -n " + ns
	}
	return ref
}

// DeleteFiles deletes every object the files name. Missing objects are an
// error (after the others are deleted), as with kubectl.
func (c *Client) DeleteFiles(ctx context.Context, files []File, out io.Writer) error {
	ct, body, err := multipartBody(files)
	if err != nil {
		return err
	}
	var resp api.ApplyResponse
	err = c.do(ctx, "POST", "/api/v1/delete", nil, ct, body, &resp)
	var ae *APIError
	if errors.As(err, &ae) && len(ae.Results) > 0 {
		for _, r := range ae.Results {
			if r.Action == api.ActionDeleted {
				printResults(out, []api.Result{r})
			}
		}
		return err
	}
	if err != nil {
		return err
	}
	printResults(out, resp.Results)
	return nil
}

// Delete deletes one object by kind and name.
func (c *Client) Delete(ctx context.Context, kind, ns, name string, out io.Writer) error {
	var resp api.ApplyResponse
	if err := c.do(ctx, "DELETE", resourcePath(kind, ns, name), nil, "", nil, &resp); err != nil {
		return err
	}
	printResults(out, resp.Results)
	return nil
}

package api

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// ClientConfig is the CLI context: where the API is and the admin token.
// `weft control` writes it to $WEFT_HOME/config; `weft apply` and friends
// read it, so on that machine they need no flags.
type ClientConfig struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// EnvHome names the directory of weft's per-user files.
const EnvHome = "WEFT_HOME"

// Home is $WEFT_HOME, else ~/.weft.
func Home() (string, error) {
	if h := os.Getenv(EnvHome); h != "" {
		return h, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory: set %s: %w", EnvHome, err)
	}
	return filepath.Join(home, ".weft"), nil
}

// ConfigPath is the CLI context file inside a weft home.
func ConfigPath(home string) string { return filepath.Join(home, "config") }

// ReadClientConfig reads a CLI context file.
func ReadClientConfig(path string) (*ClientConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c ClientConfig
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// WriteClientConfig writes a CLI context file, readable by its owner only
// (it holds the admin token), replacing any old one atomically.
func WriteClientConfig(path string, c ClientConfig) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	data = append([]byte("# The weft CLI context, written by `weft control`: the API address and\n# its admin token. Keep it private.\n"), data...)
	return WritePrivateFile(path, data)
}

// WritePrivateFile writes data to path with mode 0600 (creating the
// directory 0700), through a temporary file and a rename.
func WritePrivateFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp, 0o600)); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

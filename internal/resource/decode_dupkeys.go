package resource

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
)

// Strict YAML refuses a key repeated within one mapping, but says only which
// line; a user editing a long file needs the path. The document is decoded
// again keeping order and repeats (MapSlice), and the repeats are located.

var dupKeyLineRE = regexp.MustCompile(`line (\d+): key .* already set in map`)

// duplicateKeyErrors explains a YAML error made only of repeated keys, or
// returns nil so the caller keeps the YAML error as it is.
// start is the document's first line in the file.
func duplicateKeyErrors(doc []byte, start int, yamlErr string) []fieldProblem {
	lines := dupKeyLineRE.FindAllStringSubmatch(yamlErr, -1)
	if len(lines) == 0 || len(lines) != strings.Count(yamlErr, "\n  ") {
		return nil
	}
	var root yamlv2.MapSlice
	if err := yamlv2.Unmarshal(doc, &root); err != nil {
		return nil
	}
	var out []fieldProblem
	findDuplicateKeys("", root, &out)
	// yaml.v2 reports repeats in document order, as the walk finds them.
	if len(out) != len(lines) {
		return nil
	}
	for i := range out {
		n, _ := strconv.Atoi(lines[i][1])
		out[i].reason += fmt.Sprintf(" (line %d)", n+start-1)
	}
	return out
}

func findDuplicateKeys(path string, g any, out *[]fieldProblem) {
	switch x := g.(type) {
	case yamlv2.MapSlice:
		seen := map[string]bool{}
		for _, item := range x {
			k := fmt.Sprint(item.Key)
			p := joinPath(path, k)
			if seen[k] {
				*out = append(*out, fieldProblem{p, fmt.Sprintf("key %q appears more than once in the same mapping", k)})
			}
			seen[k] = true
			findDuplicateKeys(p, item.Value, out)
		}
	case []any:
		for i, e := range x {
			findDuplicateKeys(fmt.Sprintf("%s[%d]", path, i), e, out)
		}
	}
}

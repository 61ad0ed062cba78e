package config

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The README's configuration table and dist/fobgw.conf.example describe
// every key the parser knows, each in its section, and no other: the README
// is the one reference, and this test keeps it in step with the key table.

var (
	readmeSection = regexp.MustCompile("^\\| \\*\\*\\[(\\w+)\\]\\*\\* \\|")
	readmeKey     = regexp.MustCompile("^\\| `(\\w+)` \\|")
	exampleHeader = regexp.MustCompile(`^\[(\w+)\]`)
	exampleKey    = regexp.MustCompile(`^#?\s*(\w+)\s*=`)
)

// readmeKeys returns the keys of the README's configuration table, by
// section: rows "| `Key` | ..." after a row "| **[Section]** | ...".
func readmeKeys(text string) map[string][]string {
	keys := map[string][]string{}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		if m := readmeSection.FindStringSubmatch(line); m != nil {
			section = strings.ToLower(m[1])
			continue
		}
		if !strings.HasPrefix(line, "|") {
			section = "" // the table ended
			continue
		}
		if m := readmeKey.FindStringSubmatch(line); m != nil && section != "" {
			keys[section] = append(keys[section], m[1])
		}
	}
	return keys
}

// exampleKeys returns the keys of an example file by section, set or
// commented out ("# Probe = ...").
func exampleKeys(text string) map[string][]string {
	keys := map[string][]string{}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if m := exampleHeader.FindStringSubmatch(line); m != nil {
			section = strings.ToLower(m[1])
			continue
		}
		if m := exampleKey.FindStringSubmatch(line); m != nil && section != "" {
			keys[section] = append(keys[section], m[1])
		}
	}
	return keys
}

// missingKeys lists every key of the parser's table that doc lacks, and
// every key doc has that the parser does not know.
func missingKeys(doc string, got map[string][]string) []string {
	var out []string
	for section, defs := range sections {
		for _, d := range defs {
			if !slices.Contains(got[section], d.name) {
				out = append(out, fmt.Sprintf("%s does not describe key %s of [%s]: add it", doc, d.name, sectionNames[section]))
			}
		}
	}
	for section, names := range got {
		for _, n := range names {
			if _, ok := findKey(section, n); !ok {
				out = append(out, fmt.Sprintf("%s describes key %s in [%s], which the parser does not know: remove it or fix its name", doc, n, section))
			}
		}
	}
	return out
}

func TestConfigReference(t *testing.T) {
	for _, tc := range []struct {
		file string
		keys func(string) map[string][]string
	}{
		{"../README.md", readmeKeys},
		{"../dist/fobgw.conf.example", exampleKeys},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range missingKeys(tc.file, tc.keys(string(data))) {
				t.Error(m)
			}
		})
	}
}

// TestConfigReferenceCatches: the comparison fails for a document that
// lacks a key or names an unknown one.
func TestConfigReferenceCatches(t *testing.T) {
	readme := "| **[Interface]** | |\n| `Name` | x |\n| `Bogus` | y |\n"
	got := readmeKeys(readme)
	if !slices.Equal(got["interface"], []string{"Name", "Bogus"}) {
		t.Fatalf("readmeKeys = %v", got)
	}
	m := missingKeys("README", got)
	if len(m) != len(sections["interface"])+len(sections["peer"])+len(sections["gateway"]) ||
		!slices.ContainsFunc(m, func(s string) bool { return strings.Contains(s, "key Bogus") }) {
		t.Errorf("missingKeys = %q; want every key but Name missing, and Bogus unknown", m)
	}
}

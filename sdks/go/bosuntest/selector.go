package bosuntest

// Kubernetes label selectors, for the harness's List. The host parses
// selectors with its own parser (crate bosun-selector); this one accepts
// the same syntax so a test sees the objects the host would return: a=b,
// a==b, a!=b, a in (x,y), a notin (x,y), a and !a, joined by commas.

import (
	"fmt"
	"regexp"
	"strings"
)

const keyPattern = `[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?`

var (
	notExists = regexp.MustCompile(`^!\s*(` + keyPattern + `)$`)
	setBased  = regexp.MustCompile(`^(` + keyPattern + `)\s+(in|notin)\s+\(([^()]*)\)$`)
	equality  = regexp.MustCompile(`^(` + keyPattern + `)\s*(==|!=|=)\s*(.*)$`)
	exists    = regexp.MustCompile(`^` + keyPattern + `$`)
	value     = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)
)

type requirement func(labels map[string]string) bool

// parseSelector parses text into a predicate; an empty selector matches
// everything. The error says what the host would.
func parseSelector(text string) (func(map[string]string) bool, error) {
	terms, err := splitTerms(text)
	if err != nil {
		return nil, err
	}
	var requirements []requirement
	for _, term := range terms {
		r, err := parseRequirement(term)
		if err != nil {
			return nil, err
		}
		requirements = append(requirements, r)
	}
	return func(labels map[string]string) bool {
		for _, r := range requirements {
			if !r(labels) {
				return false
			}
		}
		return true
	}, nil
}

// splitTerms splits on the commas outside `in (...)` lists.
func splitTerms(text string) ([]string, error) {
	var terms []string
	depth, current := 0, strings.Builder{}
	for _, ch := range text {
		switch {
		case ch == '(':
			depth++
		case ch == ')':
			depth--
		}
		if ch == ',' && depth == 0 {
			terms = append(terms, strings.TrimSpace(current.String()))
			current.Reset()
			continue
		}
		current.WriteRune(ch)
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced parentheses in selector %q", text)
	}
	terms = append(terms, strings.TrimSpace(current.String()))
	if len(terms) == 1 && terms[0] == "" {
		return nil, nil
	}
	for _, t := range terms {
		if t == "" {
			return nil, fmt.Errorf("empty requirement in selector %q", text)
		}
	}
	return terms, nil
}

func parseRequirement(term string) (requirement, error) {
	if m := notExists.FindStringSubmatch(term); m != nil {
		key := m[1]
		return func(labels map[string]string) bool { _, ok := labels[key]; return !ok }, nil
	}
	if m := setBased.FindStringSubmatch(term); m != nil {
		key, op := m[1], m[2]
		values := map[string]bool{}
		for _, v := range strings.Split(m[3], ",") {
			v = strings.TrimSpace(v)
			if err := checkValue(v, term); err != nil {
				return nil, err
			}
			values[v] = true
		}
		if op == "in" {
			return func(labels map[string]string) bool { v, ok := labels[key]; return ok && values[v] }, nil
		}
		return func(labels map[string]string) bool { v, ok := labels[key]; return !ok || !values[v] }, nil
	}
	if m := equality.FindStringSubmatch(term); m != nil {
		key, op, wanted := m[1], m[2], strings.TrimSpace(m[3])
		if err := checkValue(wanted, term); err != nil {
			return nil, err
		}
		if op == "!=" {
			return func(labels map[string]string) bool { v, ok := labels[key]; return !ok || v != wanted }, nil
		}
		return func(labels map[string]string) bool { v, ok := labels[key]; return ok && v == wanted }, nil
	}
	if exists.MatchString(term) {
		return func(labels map[string]string) bool { _, ok := labels[term]; return ok }, nil
	}
	return nil, fmt.Errorf("cannot parse label selector requirement %q", term)
}

func checkValue(v, term string) error {
	if len(v) > 63 || !value.MatchString(v) {
		return fmt.Errorf("invalid label value %q in %q", v, term)
	}
	return nil
}

package bosun

import (
	"fmt"
	"strings"
)

// Scope says whether objects of a kind live in a namespace or at cluster
// scope (the WIT enum `scope`).
type Scope uint8

const (
	Namespaced Scope = iota
	Cluster
)

func (s Scope) String() string {
	if s == Cluster {
		return "cluster"
	}
	return "namespaced"
}

// Kind is a Kubernetes resource kind: group, version, kind, plural, scope.
// Take built-in kinds from package kinds; declare a custom resource's with
// CustomKind.
type Kind struct {
	Group   string
	Version string
	Kind    string
	Plural  string
	Scope   Scope
}

// APIVersion is `group/version`, or just `version` for the core group.
func (k Kind) APIVersion() string {
	if k.Group == "" {
		return k.Version
	}
	return k.Group + "/" + k.Version
}

// IsKindOf reports whether obj has this kind's apiVersion and kind.
func (k Kind) IsKindOf(obj map[string]any) bool {
	return obj["apiVersion"] == k.APIVersion() && obj["kind"] == k.Kind
}

func (k Kind) String() string {
	return fmt.Sprintf("%s.%s", k.Kind, k.APIVersion())
}

// CustomKind is a namespaced custom resource's kind with the plural
// derived from kind as kube-rs's #[derive(CustomResource)] does, so a Go
// module declares the same kind as its Rust twin. The host resolves kinds
// through API discovery and never trusts a declared plural; set Plural or
// Scope on the result to say otherwise.
func CustomKind(group, version, kind string) Kind {
	return Kind{Group: group, Version: version, Kind: kind, Plural: PluralOf(kind), Scope: Namespaced}
}

// PluralOf is the plural kube-rs derives for kind (kube-derive's to_plural).
func PluralOf(kind string) string {
	word := strings.ToLower(kind)
	if word == "endpoints" || word == "endpointslices" {
		return word
	}
	for _, end := range []string{"s", "x", "z", "ch", "sh"} {
		if strings.HasSuffix(word, end) {
			return word + "es"
		}
	}
	if n := len(word); n > 1 && word[n-1] == 'y' && !strings.ContainsRune("aeiou", rune(word[n-2])) {
		return word[:n-1] + "ies"
	}
	return word + "s"
}

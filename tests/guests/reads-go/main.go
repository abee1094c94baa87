// A test guest for host/tests/go_guest.rs: each call crosses a part of
// the Go SDK's glue cnat-go does not — get-object (found and missing),
// list-objects with a selector, a read the host refuses, the module's
// settings, observed children, finalize — and reports what it saw, so the
// test compares it with what it gave the host.
package main

import (
	"fmt"
	"time"

	bosun "github.com/bosun-dev/bosun/sdks/go"
	"github.com/bosun-dev/bosun/sdks/go/kinds"
)

// Probe's spec names what to read.
type Probe struct {
	bosun.TypeMeta `json:",inline"`
	Metadata       bosun.ObjectMeta `json:"metadata"`
	Spec           struct {
		Get       string `json:"get"`
		Missing   string `json:"missing"`
		Selector  string `json:"selector"`
		Forbidden bool   `json:"forbidden"`
		Linger    bool   `json:"linger"`
	} `json:"spec"`
}

// Seen is the status: what each read returned.
type Seen struct {
	Got      map[string]string `json:"got"`
	Missing  bool              `json:"missing"`
	Listed   []string          `json:"listed"`
	Children []string          `json:"children"`
	Settings map[string]any    `json:"settings"`
	Trigger  string            `json:"trigger"`
}

type reads struct{}

func (reads) Kind() bosun.Kind { return bosun.CustomKind("test.bosun.dev", "v1", "Probe") }

func (reads) Metadata() *bosun.Metadata {
	return bosun.NewMetadata("reads-go", "0.1.0").Owns(kinds.Secret).Reads(kinds.ConfigMap).
		WithFinalizer("test.bosun.dev/cleanup")
}

// Finalize lingers for 1.5 s while spec.linger says so, with an event
// naming the children still there; done otherwise.
func (reads) Finalize(p *Probe, ctx *bosun.Context) (*bosun.Finalized, error) {
	if !p.Spec.Linger {
		return bosun.Done(), nil
	}
	var owned []bosun.Object
	if err := ctx.Children(kinds.Secret, &owned); err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%d children left", len(owned))
	return bosun.Pending(1500 * time.Millisecond).Event(bosun.WarningEvent("Lingering", note).WithAction("Cleanup")), nil
}

func (reads) Reconcile(p *Probe, ctx *bosun.Context) (*bosun.Response, error) {
	if p.Spec.Forbidden {
		// Not declared: the host refuses, and the SDK makes it ReadFailed.
		var d bosun.Object
		if _, err := ctx.Get(kinds.Deployment, "web", &d); err != nil {
			return nil, err
		}
	}
	seen := Seen{Trigger: string(ctx.Trigger)}
	var cm bosun.ConfigMap
	found, err := ctx.Get(kinds.ConfigMap, p.Spec.Get, &cm)
	if err != nil {
		return nil, err
	}
	if found {
		seen.Got = cm.Data
	}
	missing, err := ctx.Get(kinds.ConfigMap, p.Spec.Missing, &cm)
	if err != nil {
		return nil, err
	}
	seen.Missing = !missing
	var listed []bosun.ConfigMap
	if err := ctx.List(kinds.ConfigMap, p.Spec.Selector, &listed); err != nil {
		return nil, err
	}
	for _, c := range listed {
		seen.Listed = append(seen.Listed, c.Metadata.Name)
	}
	var owned []bosun.Object
	if err := ctx.Children(kinds.Secret, &owned); err != nil {
		return nil, err
	}
	for _, o := range owned {
		seen.Children = append(seen.Children, o.Metadata.Name)
	}
	if _, err := ctx.Settings(&seen.Settings); err != nil {
		return nil, err
	}
	ctx.Info(fmt.Sprintf("read %d configmaps", len(listed)))
	return bosun.NewResponse().Status(seen), nil
}

func init() { bosun.Export[Probe](reads{}) }

func main() {}

package bosun

// Metadata is what a module tells the host about itself: its name and
// version, the kinds it owns and reads, and its finalizer. The primary
// kind comes from the Reconciler's Kind. Build it with chained calls:
//
//	bosun.NewMetadata("cnat", "0.1.0").Owns(kinds.Pod)
type Metadata struct {
	Name      string
	Version   string
	Owned     []Kind
	Read      []Kind
	Finalizer string
	// Origins are the HTTP origins declared with HTTPOrigin.
	Origins []string
}

// NewMetadata starts a module's metadata. name is a DNS label: the
// controller name in metrics and the field manager `bosun/<name>`.
func NewMetadata(name, version string) *Metadata {
	return &Metadata{Name: name, Version: version}
}

// Owns declares a kind of children the module creates; the host applies
// the desired ones and prunes the rest.
func (m *Metadata) Owns(kind Kind) *Metadata {
	m.Owned = append(m.Owned, kind)
	return m
}

// Reads declares a further kind the module reads through Context.Get and
// Context.List (the primary and owned kinds are always readable).
func (m *Metadata) Reads(kind Kind) *Metadata {
	m.Read = append(m.Read, kind)
	return m
}

// WithFinalizer asks the host to put finalizer on each primary object and
// to call Finalize while one is being deleted.
func (m *Metadata) WithFinalizer(finalizer string) *Metadata {
	m.Finalizer = finalizer
	return m
}

// HTTPOrigin declares an origin the module sends HTTP requests to through
// Context.HTTP: scheme://host[:port] (http or https; a leading `*.` covers
// subdomains only). Call once per origin. The operator must grant each;
// the host refuses requests anywhere else and adds the credentials the
// grant binds to an origin itself.
func (m *Metadata) HTTPOrigin(origin string) *Metadata {
	m.Origins = append(m.Origins, origin)
	return m
}

//go:build wasip1

package bosun

// The component's glue: the exports and imports of the WIT world
// `bosun:reconciler/reconciler@0.2.0` (wit/reconciler.wit) in the
// canonical ABI, written by hand for mainline Go's //go:wasmexport and
// //go:wasmimport. wit-bindgen-go, which would generate them, assumes
// TinyGo's 32-bit pointers and is not served by the Go proxy here.
//
// Layouts (wasm32: a pointer or a length is 4 bytes; a string or a list is
// a pointer and a length; a record's fields are laid out in order, each at
// its alignment; an enum is one byte; option<T> and variants are a one-byte
// discriminant, then the payload at its alignment):
//
//	api-kind        group@0 version@8 kind@16 plural@24 scope@32      size 36
//	module-info     name@0 version@8 primary@16 owns@52 reads@60
//	                finalizer@68 (disc, ptr@72, len@76) origins@80    size 88
//	event           type@0 reason@4 note@12 action@20                 size 28
//	result<response, reconcile-error>                                  size 56
//	  disc@0; ok: children@8 status@16(disc, ptr@20, len@24)
//	      requeue@32(disc, u64@40) events@48
//	  err: case@8 (0 retryable, 1 permanent) reason@12 message@20
//	result<finalize-response, reconcile-error>                         size 40
//	  disc@0; ok: done@8 requeue@16(disc, u64@24) events@32; err as above
//
// The host lowers a call's arguments into this module's memory through
// cabi_realloc; the results are written to memory this glue allocates.
// Each instance serves one call and is then dropped, so nothing here is
// ever freed: the glue only keeps what it hands the host alive, because
// Go's collector cannot see an address held as a number.

import (
	"encoding/binary"
	"time"
	"unsafe"
)

// kept holds every allocation the host may still read or write.
var kept [][]byte

// bootArena serves the allocations made before Go's runtime is up: the
// WASI preview1 adapter allocates its state through cabi_realloc during
// _initialize, at the first WASI call Go's runtime makes, when Go's heap
// cannot be used yet. A static array needs no allocator. The adapter of
// wasmtime 48 asks for two 64 KiB blocks (its state, its stack): 128 KiB,
// measured; the rest is headroom for another adapter version.
var bootArena [192 << 10]byte
var bootUsed uintptr

// goReady is set by this package's init, which runs once the runtime is
// up: from then on allocations come from Go's heap.
var goReady bool

func init() { goReady = true }

//go:wasmexport cabi_realloc
func cabiRealloc(old, oldSize, align, size uint32) uint32 {
	if size == 0 {
		return align
	}
	var p uint32
	if !goReady {
		start := (bootUsed + uintptr(align) - 1) &^ (uintptr(align) - 1)
		if start+uintptr(size) > uintptr(len(bootArena)) {
			// Out of static room before the runtime is up: nothing else can
			// serve it. The panic cannot be printed this early (printing
			// calls into the adapter that is asking), so the instance ends
			// in a trap, never with memory shared with Go's heap.
			panic("bosun: cabi_realloc before the Go runtime started needs more than the boot arena")
		}
		bootUsed = start + uintptr(size)
		p = uint32(uintptr(unsafe.Pointer(&bootArena[start])))
	} else {
		// Over-allocate by align-1 so the block can be aligned; Go's
		// allocator aligns to 8 for these sizes anyway.
		block := make([]byte, size+align)
		kept = append(kept, block)
		base := uint32(uintptr(unsafe.Pointer(&block[0])))
		p = (base + align - 1) &^ (align - 1)
	}
	if old != 0 && oldSize != 0 {
		copy(bytesAt(p, min(oldSize, size)), bytesAt(old, min(oldSize, size)))
	}
	return p
}

// bytesAt is the linear memory at [p, p+n).
func bytesAt(p, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(p))), n)
}

func stringAt(p, n uint32) string { return string(bytesAt(p, n)) }

// alloc is zeroed memory of n bytes, aligned to 8, kept alive.
func alloc(n uint32) []byte {
	return bytesAt(cabiRealloc(0, 0, 8, n), n)
}

func addr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

// putString copies s into kept memory and writes its pointer and length at
// buf[off:].
func putString(buf []byte, off int, s string) {
	var p uint32
	if len(s) > 0 {
		mem := alloc(uint32(len(s)))
		copy(mem, s)
		p = addr(mem)
	}
	binary.LittleEndian.PutUint32(buf[off:], p)
	binary.LittleEndian.PutUint32(buf[off+4:], uint32(len(s)))
}

func putStrings(buf []byte, off int, list []string) {
	mem := alloc(uint32(8 * len(list)))
	for i, s := range list {
		putString(mem, 8*i, s)
	}
	binary.LittleEndian.PutUint32(buf[off:], addr(mem))
	binary.LittleEndian.PutUint32(buf[off+4:], uint32(len(list)))
}

func putOptionString(buf []byte, off int, s *string) {
	if s != nil {
		buf[off] = 1
		putString(buf, off+4, *s)
	}
}

func putOptionU64(buf []byte, off int, v *uint64) {
	if v != nil {
		buf[off] = 1
		binary.LittleEndian.PutUint64(buf[off+8:], *v)
	}
}

func putKind(buf []byte, off int, k Kind) {
	putString(buf, off, k.Group)
	putString(buf, off+8, k.Version)
	putString(buf, off+16, k.Kind)
	putString(buf, off+24, k.Plural)
	buf[off+32] = byte(k.Scope)
}

func putKinds(buf []byte, off int, list []Kind) {
	mem := alloc(uint32(36 * len(list)))
	for i, k := range list {
		putKind(mem, 36*i, k)
	}
	binary.LittleEndian.PutUint32(buf[off:], addr(mem))
	binary.LittleEndian.PutUint32(buf[off+4:], uint32(len(list)))
}

func putEvents(buf []byte, off int, events []Event) {
	mem := alloc(uint32(28 * len(events)))
	for i, e := range events {
		at := 28 * i
		mem[at] = byte(e.Type)
		putString(mem, at+4, e.Reason)
		putString(mem, at+12, e.Note)
		putString(mem, at+20, e.Action)
	}
	binary.LittleEndian.PutUint32(buf[off:], addr(mem))
	binary.LittleEndian.PutUint32(buf[off+4:], uint32(len(events)))
}

// putError writes a reconcile-error at buf[8:] of a result and marks the
// result as an error.
func putError(buf []byte, e *Error) {
	buf[0] = 1
	if e.Permanent {
		buf[8] = 1
	}
	putString(buf, 12, e.Reason)
	putString(buf, 20, e.Message)
}

// request lifts the flattened `request` record the host passes.
func request(objPtr, objLen, childPtr, childLen, setDisc, setPtr, setLen, trigger, attempt uint32) *Request {
	req := &Request{Object: stringAt(objPtr, objLen), Attempt: attempt}
	list := bytesAt(childPtr, 8*childLen)
	for i := uint32(0); i < childLen; i++ {
		p := binary.LittleEndian.Uint32(list[8*i:])
		n := binary.LittleEndian.Uint32(list[8*i+4:])
		req.Children = append(req.Children, stringAt(p, n))
	}
	if setDisc != 0 {
		s := stringAt(setPtr, setLen)
		req.Settings = &s
	}
	if int(trigger) < len(Triggers) {
		req.Trigger = Triggers[trigger]
	}
	return req
}

// notExported is the failure when the main package never called Export.
var notExported = Retryable("NotExported", "the module's main package did not call bosun.Export")

//go:wasmexport metadata
func exportMetadata() uint32 {
	buf := alloc(88)
	if exported == nil {
		// The host reads metadata once, at load: an empty name fails the
		// load with the host's validation message.
		return addr(buf)
	}
	info := exported.Info()
	putString(buf, 0, info.Name)
	putString(buf, 8, info.Version)
	putKind(buf, 16, info.Primary)
	putKinds(buf, 52, info.Owns)
	putKinds(buf, 60, info.Reads)
	putOptionString(buf, 68, info.Finalizer)
	putStrings(buf, 80, info.HTTPOrigins)
	return addr(buf)
}

//go:wasmexport reconcile
func exportReconcile(objPtr, objLen, childPtr, childLen, setDisc, setPtr, setLen, trigger, attempt uint32) uint32 {
	buf := alloc(56)
	if exported == nil {
		putError(buf, notExported)
		return addr(buf)
	}
	req := request(objPtr, objLen, childPtr, childLen, setDisc, setPtr, setLen, trigger, attempt)
	response, failure := exported.Reconcile(req, wasmHost{})
	if failure != nil {
		putError(buf, failure)
		return addr(buf)
	}
	putStrings(buf, 8, response.Children)
	putOptionString(buf, 16, response.StatusJSON)
	putOptionU64(buf, 32, response.RequeueAfterMs)
	putEvents(buf, 48, response.Events)
	return addr(buf)
}

//go:wasmexport finalize
func exportFinalize(objPtr, objLen, childPtr, childLen, setDisc, setPtr, setLen, trigger, attempt uint32) uint32 {
	buf := alloc(40)
	if exported == nil {
		putError(buf, notExported)
		return addr(buf)
	}
	req := request(objPtr, objLen, childPtr, childLen, setDisc, setPtr, setLen, trigger, attempt)
	answer, failure := exported.Finalize(req, wasmHost{})
	if failure != nil {
		putError(buf, failure)
		return addr(buf)
	}
	if answer.IsDone {
		buf[8] = 1
	}
	putOptionU64(buf, 16, answer.RequeueAfterMs)
	putEvents(buf, 32, answer.Events)
	return addr(buf)
}

//go:wasmimport bosun:reconciler/host@0.2.0 log
func hostLog(level, msgPtr, msgLen uint32)

//go:wasmimport bosun:reconciler/host@0.2.0 get-object
func hostGetObject(avPtr, avLen, kindPtr, kindLen, nsDisc, nsPtr, nsLen, namePtr, nameLen, ret uint32)

//go:wasmimport bosun:reconciler/host@0.2.0 list-objects
func hostListObjects(avPtr, avLen, kindPtr, kindLen, nsDisc, nsPtr, nsLen, selDisc, selPtr, selLen, ret uint32)

// wasmHost is the Host the component's exports hand the reconciler.
type wasmHost struct{}

// flat is a string's pointer and length for an import call; the bytes are
// kept alive in memory of the glue's own.
func flat(s string) (uint32, uint32) {
	if s == "" {
		return 0, 0
	}
	mem := alloc(uint32(len(s)))
	copy(mem, s)
	return addr(mem), uint32(len(s))
}

func flatOption(s *string) (uint32, uint32, uint32) {
	if s == nil {
		return 0, 0, 0
	}
	p, n := flat(*s)
	return 1, p, n
}

func (wasmHost) Log(level LogLevel, message string) {
	p, n := flat(message)
	hostLog(uint32(level), p, n)
}

func (wasmHost) GetObject(apiVersion, kind string, namespace *string, name string) (*string, error) {
	avP, avN := flat(apiVersion)
	kP, kN := flat(kind)
	nsD, nsP, nsN := flatOption(namespace)
	nameP, nameN := flat(name)
	ret := alloc(16)
	hostGetObject(avP, avN, kP, kN, nsD, nsP, nsN, nameP, nameN, addr(ret))
	if ret[0] != 0 {
		return nil, &HostError{Message: stringAt(binary.LittleEndian.Uint32(ret[4:]), binary.LittleEndian.Uint32(ret[8:]))}
	}
	if ret[4] == 0 {
		return nil, nil
	}
	found := stringAt(binary.LittleEndian.Uint32(ret[8:]), binary.LittleEndian.Uint32(ret[12:]))
	return &found, nil
}

func (wasmHost) ListObjects(apiVersion, kind string, namespace, labelSelector *string) ([]string, error) {
	avP, avN := flat(apiVersion)
	kP, kN := flat(kind)
	nsD, nsP, nsN := flatOption(namespace)
	selD, selP, selN := flatOption(labelSelector)
	ret := alloc(12)
	hostListObjects(avP, avN, kP, kN, nsD, nsP, nsN, selD, selP, selN, addr(ret))
	p, n := binary.LittleEndian.Uint32(ret[4:]), binary.LittleEndian.Uint32(ret[8:])
	if ret[0] != 0 {
		return nil, &HostError{Message: stringAt(p, n)}
	}
	list := bytesAt(p, 8*n)
	found := make([]string, 0, n)
	for i := uint32(0); i < n; i++ {
		found = append(found, stringAt(binary.LittleEndian.Uint32(list[8*i:]), binary.LittleEndian.Uint32(list[8*i+4:])))
	}
	return found, nil
}

// Now reads the WASI wall clock, which the host controls (`bosun reconcile
// --now` fixes it).
func (wasmHost) Now() time.Time { return time.Now() }

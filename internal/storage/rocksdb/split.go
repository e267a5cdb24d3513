//go:build rocksdb

package rocksdb

/*
#cgo LDFLAGS: -lrocksdb
#include <stdlib.h>
#include <rocksdb/c.h>

// ms_split is storage.Split in C: the length of k's engine prefix. A version key
// ('K' esc(userkey) 00 01 ...) is cut after its 00 01; any other key is its own prefix.
// It must agree with storage.Split byte for byte (TestSplitMatchesStorage): the prefix
// bloom filters written into tables depend on it.
static size_t ms_split(const char* k, size_t n) {
	if (n == 0 || k[0] != 'K') return n;
	for (size_t i = 1; i + 1 < n; i++) {
		if (k[i] == 0) {
			if (k[i+1] == 1) return i + 2;
			i++; // 00 FF: an escaped zero byte
		}
	}
	return n;
}

// The transform returns a pointer into the key itself: nothing is allocated.
static char* ms_transform(void* st, const char* k, size_t n, size_t* out) {
	*out = ms_split(k, n);
	return (char*)k;
}
static unsigned char ms_in_domain(void* st, const char* k, size_t n) { return 1; }
static unsigned char ms_in_range(void* st, const char* k, size_t n) { return ms_split(k, n) == n; }
static const char* ms_name(void* st) { return "metastore.split.v1"; }
static void ms_destroy(void* st) {}

static rocksdb_slicetransform_t* ms_new_split_transform(void) {
	return rocksdb_slicetransform_create(NULL, ms_destroy, ms_transform, ms_in_domain, ms_in_range, ms_name);
}

static size_t ms_split_test(const char* k, size_t n) { return ms_split(k, n); }
*/
import "C"

import (
	"unsafe"

	"github.com/linxGnu/grocksdb"
)

// setSplitTransform makes opts's prefix extractor the one that cuts keys as
// storage.Split does. Its name is recorded in every table's properties: tables written
// with another extractor do not use their prefix filters under this one.
//
// It is set through the C API rather than grocksdb's SetPrefixExtractor because
// grocksdb v1.7.15's Options.Destroy frees the extractor it was given a second time (the
// options already own it, as a shared_ptr), which crashes on Close. This reads the C
// pointer that is the first field of grocksdb.Options (the version is pinned in go.mod;
// TestPrefixSeekUsesFilters fails if the extractor is not in effect).
func setSplitTransform(opts *grocksdb.Options) {
	c := *(**C.rocksdb_options_t)(unsafe.Pointer(opts))
	C.rocksdb_options_set_prefix_extractor(c, C.ms_new_split_transform())
}

// cSplit runs the C cut on k, for the test that compares it with storage.Split.
func cSplit(k []byte) int {
	if len(k) == 0 {
		return int(C.ms_split_test(nil, 0))
	}
	ck := C.CBytes(k)
	defer C.free(ck)
	return int(C.ms_split_test((*C.char)(ck), C.size_t(len(k))))
}

// cBytes copies b into C memory (nil stays nil): RocksDB keeps pointers to iterator
// bounds for the iterator's life, which Go memory must not be lent for. Free with freeC.
func cBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	if len(b) == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(C.CBytes(b)), len(b))
}

func freeC(b []byte) {
	if len(b) > 0 {
		C.free(unsafe.Pointer(&b[0]))
	}
}

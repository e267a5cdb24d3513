package watch

import (
	"bytes"
	"math/rand/v2"
)

// intervals is the range watchers of a group in an interval tree: a treap ordered by
// (start key, creation sequence), each node knowing the largest end in its subtree,
// so that the watchers whose range holds a key are found in O(log n + matches)
// (expected), not by checking every range watcher.
//
// An end is a watcher's end key, or "unbounded" for a watcher of every key from its
// key (end empty and non-nil). Single-key watchers are not kept here (group.keys).
type intervals struct {
	root *inode
	n    int
}

type inode struct {
	w           *watcher
	prio        uint32
	left, right *inode
	// maxEnd, maxInf: the largest end in the subtree (maxInf: one is unbounded).
	maxEnd []byte
	maxInf bool
}

// before orders watchers by start key, then by creation.
func before(a, b *watcher) bool {
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c < 0
	}
	return a.seq < b.seq
}

func (n *inode) fix() {
	n.maxEnd, n.maxInf = n.w.end, len(n.w.end) == 0
	for _, c := range []*inode{n.left, n.right} {
		if c == nil || n.maxInf {
			continue
		}
		if c.maxInf {
			n.maxInf = true
		} else if bytes.Compare(c.maxEnd, n.maxEnd) > 0 {
			n.maxEnd = c.maxEnd
		}
	}
}

func (t *intervals) insert(w *watcher) {
	t.root = insertNode(t.root, &inode{w: w, prio: rand.Uint32()})
	t.n++
}

func insertNode(root, n *inode) *inode {
	if root == nil {
		n.fix()
		return n
	}
	if n.prio > root.prio {
		n.left, n.right = split(root, n.w)
		n.fix()
		return n
	}
	if before(n.w, root.w) {
		root.left = insertNode(root.left, n)
	} else {
		root.right = insertNode(root.right, n)
	}
	root.fix()
	return root
}

// split divides root into the nodes ordered before w and the others.
func split(root *inode, w *watcher) (*inode, *inode) {
	if root == nil {
		return nil, nil
	}
	if before(root.w, w) {
		l, r := split(root.right, w)
		root.right = l
		root.fix()
		return root, r
	}
	l, r := split(root.left, w)
	root.left = r
	root.fix()
	return l, root
}

func merge(l, r *inode) *inode {
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	case l.prio > r.prio:
		l.right = merge(l.right, r)
		l.fix()
		return l
	default:
		r.left = merge(l, r.left)
		r.fix()
		return r
	}
}

// remove deletes w; false if it is not in the tree.
func (t *intervals) remove(w *watcher) bool {
	var ok bool
	t.root = removeNode(t.root, w, &ok)
	if ok {
		t.n--
	}
	return ok
}

func removeNode(root *inode, w *watcher, ok *bool) *inode {
	if root == nil {
		return nil
	}
	if root.w == w {
		*ok = true
		return merge(root.left, root.right)
	}
	if before(w, root.w) {
		root.left = removeNode(root.left, w, ok)
	} else {
		root.right = removeNode(root.right, w, ok)
	}
	root.fix()
	return root
}

// stab appends to out every watcher whose range holds key.
func (t *intervals) stab(key []byte, out []*watcher) []*watcher {
	return stabNode(t.root, key, out)
}

func stabNode(n *inode, key []byte, out []*watcher) []*watcher {
	for n != nil {
		if !n.maxInf && bytes.Compare(key, n.maxEnd) >= 0 {
			return out // every range here ends at or before key
		}
		out = stabNode(n.left, key, out)
		if bytes.Compare(n.w.key, key) > 0 {
			return out // this start and every one to the right are above key
		}
		if n.w.contains(key) {
			out = append(out, n.w)
		}
		n = n.right
	}
	return out
}

// any reports whether some watcher's range holds key.
func (t *intervals) any(key []byte) bool {
	return anyNode(t.root, key)
}

func anyNode(n *inode, key []byte) bool {
	for n != nil {
		if !n.maxInf && bytes.Compare(key, n.maxEnd) >= 0 {
			return false
		}
		if anyNode(n.left, key) {
			return true
		}
		if bytes.Compare(n.w.key, key) > 0 {
			return false
		}
		if n.w.contains(key) {
			return true
		}
		n = n.right
	}
	return false
}

// each calls fn for every watcher in the tree, which fn must not change.
func (t *intervals) each(fn func(w *watcher)) {
	var walk func(n *inode)
	walk = func(n *inode) {
		if n != nil {
			walk(n.left)
			fn(n.w)
			walk(n.right)
		}
	}
	walk(t.root)
}

//! Path-compressed binary (Patricia) trie over fixed-width keys.
//!
//! Every node carries a masked prefix (`key`/`len`) and a `slot` that is
//! either [`NIL`] (a glue node, which always has two children) or an opaque
//! payload chosen by the caller (the FIB stores a route or route-group index).
//! Nodes of all tries of one key width share one [`Arena`]; a trie is just a
//! root index owned by the caller.

use crate::arena::{Arena, NIL, Slot};

/// A fixed-width key: `u32` for IPv4, `u128` for IPv6.
pub trait Bits: Copy + Eq + Default {
    /// Key width in bits.
    const WIDTH: u8;
    /// The key with everything after the first `len` bits cleared.
    fn mask(self, len: u8) -> Self;
    /// Bit `i` counted from the most significant (0) as a child index.
    fn bit(self, i: u8) -> usize;
    /// How many leading bits `self` and `other` share.
    fn common(self, other: Self) -> u8;
}

impl Bits for u32 {
    const WIDTH: u8 = 32;
    #[inline]
    fn mask(self, len: u8) -> Self {
        self & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
    }
    #[inline]
    fn bit(self, i: u8) -> usize {
        ((self >> (31 - i)) & 1) as usize
    }
    #[inline]
    fn common(self, other: Self) -> u8 {
        (self ^ other).leading_zeros() as u8
    }
}

impl Bits for u128 {
    const WIDTH: u8 = 128;
    #[inline]
    fn mask(self, len: u8) -> Self {
        self & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
    }
    #[inline]
    fn bit(self, i: u8) -> usize {
        ((self >> (127 - i)) & 1) as usize
    }
    #[inline]
    fn common(self, other: Self) -> u8 {
        (self ^ other).leading_zeros() as u8
    }
}

/// One trie node: 20 bytes for IPv4, 32 for IPv6.
#[derive(Clone, Copy, Debug)]
pub struct Node<K> {
    key: K,
    child: [u32; 2],
    slot: u32,
    len: u8,
}

impl<K: Bits> Slot for Node<K> {
    fn vacant(next: u32) -> Self {
        Node {
            key: K::default(),
            child: [next, NIL],
            slot: NIL,
            len: 0,
        }
    }
    fn next_vacant(&self) -> u32 {
        self.child[0]
    }
}

/// Where a node index is stored: the caller's root or a parent's child link.
#[derive(Clone, Copy)]
enum Link {
    Root,
    Child(u32, usize),
}

/// The node arena for every trie of one key width.
#[derive(Clone, Debug)]
pub struct Tries<K> {
    nodes: Arena<Node<K>>,
}

impl<K: Clone> Tries<K> {
    /// A copy sharing the node arena copy-on-write ([`Arena::share`]).
    pub fn share(&mut self) -> Tries<K> {
        Tries {
            nodes: self.nodes.share(),
        }
    }
}

impl<K> Default for Tries<K> {
    fn default() -> Self {
        Tries {
            nodes: Arena::default(),
        }
    }
}

impl<K: Bits> Tries<K> {
    /// Heap bytes held by the nodes.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.heap_bytes()
    }

    /// Live nodes (route and glue) in all tries of this width.
    pub fn nodes(&self) -> usize {
        self.nodes.live()
    }

    /// The payload of node `n`.
    pub fn slot(&self, n: u32) -> u32 {
        self.nodes.get(n).slot
    }

    /// Replaces the payload of node `n`.
    pub fn set_slot(&mut self, n: u32, slot: u32) {
        self.nodes.get_mut(n).slot = slot;
    }

    fn read(&self, root: u32, link: Link) -> u32 {
        match link {
            Link::Root => root,
            Link::Child(p, side) => self.nodes.get(p).child[side],
        }
    }

    fn write(&mut self, root: &mut u32, link: Link, n: u32) {
        match link {
            Link::Root => *root = n,
            Link::Child(p, side) => self.nodes.get_mut(p).child[side] = n,
        }
    }

    fn new_node(&mut self, key: K, len: u8) -> u32 {
        self.nodes.alloc(Node {
            key,
            child: [NIL, NIL],
            slot: NIL,
            len,
        })
    }

    /// The node holding exactly `key/len`, if any (glue nodes included).
    pub fn find(&self, root: u32, key: K, len: u8) -> Option<u32> {
        let mut cur = root;
        while cur != NIL {
            let n = self.nodes.get(cur);
            if n.len > len || key.common(n.key) < n.len {
                return None;
            }
            if n.len == len {
                return Some(cur);
            }
            cur = n.child[key.bit(n.len)];
        }
        None
    }

    /// The node for `key/len`, created (with a glue node if needed) when absent.
    pub fn insert(&mut self, root: &mut u32, key: K, len: u8) -> u32 {
        let mut link = Link::Root;
        loop {
            let cur = self.read(*root, link);
            if cur == NIL {
                let new = self.new_node(key, len);
                self.write(root, link, new);
                return new;
            }
            let n = *self.nodes.get(cur);
            let common = key.common(n.key).min(len).min(n.len);
            if common == n.len {
                if n.len == len {
                    return cur;
                }
                link = Link::Child(cur, key.bit(n.len));
                continue;
            }
            let new = self.split(cur, &n, key, len, common);
            self.write(root, link, new.0);
            return new.1;
        }
    }

    /// Puts `key/len` above node `cur`, which it diverges from after `common`
    /// bits. Returns (node to link in place of `cur`, node for `key/len`).
    fn split(&mut self, cur: u32, n: &Node<K>, key: K, len: u8, common: u8) -> (u32, u32) {
        let new = self.new_node(key, len);
        if common == len {
            self.nodes.get_mut(new).child[n.key.bit(len)] = cur;
            return (new, new);
        }
        let glue = self.new_node(key.mask(common), common);
        let g = self.nodes.get_mut(glue);
        g.child[key.bit(common)] = new;
        g.child[n.key.bit(common)] = cur;
        (glue, new)
    }

    /// Deletes node `key/len` if its payload is [`NIL`], splicing out a glue
    /// parent left with one child. The trie shape stays canonical.
    pub fn prune(&mut self, root: &mut u32, key: K, len: u8) {
        let (mut parent, mut link) = (Link::Root, Link::Root);
        loop {
            let cur = self.read(*root, link);
            if cur == NIL {
                return;
            }
            let n = *self.nodes.get(cur);
            if n.len > len || key.common(n.key) < n.len {
                return;
            }
            if n.len == len {
                return self.unlink(root, parent, link, cur, &n);
            }
            parent = link;
            link = Link::Child(cur, key.bit(n.len));
        }
    }

    fn unlink(&mut self, root: &mut u32, parent: Link, link: Link, cur: u32, n: &Node<K>) {
        if n.slot != NIL {
            return;
        }
        match n.child {
            [NIL, NIL] => {}
            [c, NIL] | [NIL, c] => {
                self.write(root, link, c);
                self.nodes.free(cur);
                return;
            }
            _ => return,
        }
        self.write(root, link, NIL);
        self.nodes.free(cur);
        if let Link::Child(p, side) = link {
            let pn = *self.nodes.get(p);
            if pn.slot == NIL {
                self.write(root, parent, pn.child[1 - side]);
                self.nodes.free(p);
            }
        }
    }

    /// For the prefix `key/len`: the payload and length of the longest prefix
    /// of length <= `len` covering it, and the node rooting every prefix
    /// inside it ([`NIL`] if none; may be the `key/len` node itself).
    pub fn cover(&self, root: u32, key: K, len: u8) -> (u32, u8, u32) {
        let (mut cur, mut best, mut best_len) = (root, NIL, 0);
        while cur != NIL {
            let n = self.nodes.get(cur);
            if key.common(n.key) < n.len.min(len) {
                break;
            }
            if n.len > len {
                return (best, best_len, cur);
            }
            if n.slot != NIL {
                (best, best_len) = (n.slot, n.len);
            }
            if n.len == len {
                return (best, best_len, cur);
            }
            cur = n.child[key.bit(n.len)];
        }
        (best, best_len, NIL)
    }

    /// Payload of the longest prefix in the trie containing `addr`, or [`NIL`].
    #[inline]
    pub fn lookup(&self, root: u32, addr: K) -> (u32, u8) {
        let (mut cur, mut best, mut best_len) = (root, NIL, 0);
        while cur != NIL {
            let n = self.nodes.get(cur);
            if addr.common(n.key) < n.len {
                break;
            }
            if n.slot != NIL {
                (best, best_len) = (n.slot, n.len);
            }
            if n.len == K::WIDTH {
                break;
            }
            cur = n.child[addr.bit(n.len)];
        }
        (best, best_len)
    }

    /// Calls `f(key, len, slot)` for every node with a payload, in key order.
    pub fn walk(&self, root: u32, mut f: impl FnMut(K, u8, u32)) {
        let mut stack = Vec::new();
        if root != NIL {
            stack.push(root);
        }
        while let Some(cur) = stack.pop() {
            let n = self.nodes.get(cur);
            if n.slot != NIL {
                f(n.key, n.len, n.slot);
            }
            stack.extend(n.child.iter().rev().filter(|&&c| c != NIL));
        }
    }

    /// Like [`Tries::walk`], from the first node after the prefix `after`
    /// (none: from the start) in that order, until `f` returns false;
    /// false if it did. Subtrees wholly before `after` are skipped, so a
    /// walk resumed page by page costs the page and a path, not the nodes
    /// before it.
    pub fn walk_after(
        &self,
        root: u32,
        after: Option<(K, u8)>,
        mut f: impl FnMut(K, u8, u32) -> bool,
    ) -> bool {
        let mut stack = Vec::new();
        if root != NIL {
            stack.push(root);
        }
        while let Some(cur) = stack.pop() {
            let n = self.nodes.get(cur);
            // Walk order puts a prefix before its extensions, and a 0 bit
            // before a 1.
            let (this, below) = match after {
                None => (true, true),
                Some((key, len)) => {
                    let both = n.len.min(len);
                    let shared = n.key.common(key).min(both);
                    if shared < both {
                        // They part at bit `shared`: the whole subtree is
                        // before `after` (a 0 there) or after it.
                        let later = n.key.bit(shared) == 1;
                        (later, later)
                    } else {
                        // `after` extends this node (or is it): the node is
                        // not after it, some of what lies below may be.
                        // Else this node extends `after`: after it, all.
                        (n.len > len, true)
                    }
                }
            };
            if this && n.slot != NIL && !f(n.key, n.len, n.slot) {
                return false;
            }
            if below {
                stack.extend(n.child.iter().rev().filter(|&&c| c != NIL));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserting and pruning nested and diverging prefixes keeps glue nodes
    /// exactly where two branches meet, and frees them when no longer needed.
    #[test]
    fn glue_nodes_come_and_go() {
        let mut t: Tries<u32> = Tries::default();
        let mut root = NIL;
        let a = t.insert(&mut root, 0x0a00_0000, 8);
        t.set_slot(a, 1);
        let b = t.insert(&mut root, 0x0b00_0000, 8);
        t.set_slot(b, 2);
        assert_eq!(t.nodes(), 3, "two routes and one glue");
        assert_eq!(t.lookup(root, 0x0a01_0203), (1, 8));
        assert_eq!(t.lookup(root, 0x0c00_0000), (NIL, 0));
        t.set_slot(a, NIL);
        t.prune(&mut root, 0x0a00_0000, 8);
        assert_eq!(t.nodes(), 1, "glue spliced out");
        assert_eq!(root, b);
        t.set_slot(b, NIL);
        t.prune(&mut root, 0x0b00_0000, 8);
        assert_eq!((t.nodes(), root), (0, NIL));
    }
}

//! The KV block pool's bookkeeping (PagedAttention's block manager): which fixed-size blocks of
//! KV memory are free, which sequences hold which (by reference count, so sequences with the
//! same prompt prefix share blocks), and which freed blocks still hold a known prefix and may be
//! revived by a later request before they are reused (automatic prefix caching, LRU).
//!
//! A block's *content key* is a SHA-256 chain over the adapter and every token up to the block's
//! end: two sequences get the same key for block `i` exactly when they run the same adapter (or
//! none) over the same `(i + 1) · block_size` first tokens, so a shared block holds the keys and
//! values both would have computed. Only full blocks get a key, and a block with a key is never
//! written again: sharing needs no copy-on-write.
//!
//! The backend holds the memory; this holds only ids.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub type BlockKey = [u8; 32];

/// The key of a block whose tokens are `tokens` (exactly one block's worth), after the block
/// keyed `prev` (`None` for a sequence's first block), in sharing domain `scope`, for `adapter`
/// (its content id; `None`: the base model). The first block's key carries scope and adapter,
/// every later key the one before it.
pub fn block_key(prev: Option<&BlockKey>, scope: &[u8; 32], adapter: Option<&[u8; 32]>, tokens: &[u32]) -> BlockKey {
	let mut h = Sha256::new();
	h.update(b"openledger:kv-block:v1");
	match prev {
		Some(p) => {
			h.update([2u8]);
			h.update(p);
		},
		None => {
			h.update(scope);
			match adapter {
				Some(id) => {
					h.update([1u8]);
					h.update(id);
				},
				None => h.update([0u8]),
			}
		},
	}
	h.update((tokens.len() as u32).to_le_bytes());
	for t in tokens {
		h.update(t.to_le_bytes());
	}
	h.finalize().into()
}

/// Reference counts, free list, and the prefix cache of one pool of `total` blocks.
pub struct BlockManager {
	block_size: usize,
	refs: Vec<u32>,
	key: Vec<Option<BlockKey>>,
	/// Keyed blocks, held or not.
	by_key: HashMap<BlockKey, u32>,
	/// Unkeyed blocks nobody holds, lowest id first (keeps the backend's high-water mark low).
	free: BTreeSet<u32>,
	/// Keyed blocks nobody holds, by when they were last released (oldest evicted first).
	evictable: BTreeMap<u64, u32>,
	released_at: Vec<u64>,
	clock: u64,
}

impl BlockManager {
	pub fn new(total: usize, block_size: usize) -> Self {
		assert!(block_size > 0, "a block holds at least one token");
		let total = total.min(u32::MAX as usize);
		Self {
			block_size,
			refs: vec![0; total],
			key: vec![None; total],
			by_key: HashMap::new(),
			free: (0..total as u32).collect(),
			evictable: BTreeMap::new(),
			released_at: vec![0; total],
			clock: 0,
		}
	}

	pub fn block_size(&self) -> usize {
		self.block_size
	}
	pub fn total(&self) -> usize {
		self.refs.len()
	}
	/// Blocks that an allocation may take now (free, or cached and unheld).
	pub fn available(&self) -> usize {
		self.free.len() + self.evictable.len()
	}
	/// Blocks held by at least one sequence.
	pub fn used(&self) -> usize {
		self.total() - self.available()
	}
	/// Unheld blocks that still hold a known prefix.
	pub fn cached(&self) -> usize {
		self.evictable.len()
	}
	/// Blocks needed for `tokens` positions.
	pub fn blocks_for(&self, tokens: usize) -> usize {
		tokens.div_ceil(self.block_size)
	}

	/// Takes a block for writing: the lowest free one, else the least recently released cached
	/// one (its key is forgotten). `None` when every block is held.
	pub fn allocate(&mut self) -> Option<u32> {
		let b = match self.free.pop_first() {
			Some(b) => b,
			None => {
				let (_, b) = self.evictable.pop_first()?;
				let k = self.key[b as usize].take().expect("evictable blocks are keyed; qed");
				self.by_key.remove(&k);
				b
			},
		};
		self.refs[b as usize] = 1;
		Some(b)
	}

	/// The block keyed `key`, held once more, if the pool has it.
	pub fn lookup(&mut self, key: &BlockKey) -> Option<u32> {
		let b = *self.by_key.get(key)?;
		if self.refs[b as usize] == 0 {
			self.evictable.remove(&self.released_at[b as usize]);
		}
		self.refs[b as usize] += 1;
		Some(b)
	}

	/// Marks held block `b` as full with content `key`, so later sequences may share it. A key
	/// already held by another block is left with that block (`b` stays private).
	pub fn register(&mut self, b: u32, key: BlockKey) {
		debug_assert!(self.refs[b as usize] > 0, "only held blocks are registered");
		if self.key[b as usize].is_some() || self.by_key.contains_key(&key) {
			return;
		}
		self.key[b as usize] = Some(key);
		self.by_key.insert(key, b);
	}

	/// Drops one hold on `b`; the last makes it free (or cached, when keyed).
	pub fn release(&mut self, b: u32) {
		let r = &mut self.refs[b as usize];
		assert!(*r > 0, "block {b} released more often than held");
		*r -= 1;
		if *r == 0 {
			if self.key[b as usize].is_some() {
				self.clock += 1;
				self.released_at[b as usize] = self.clock;
				self.evictable.insert(self.clock, b);
			} else {
				self.free.insert(b);
			}
		}
	}

	/// Whether `b` is held by one sequence only and keyed by none: the only blocks a step may write.
	pub fn is_private(&self, b: u32) -> bool {
		self.refs.get(b as usize) == Some(&1) && self.key[b as usize].is_none()
	}

	/// Holders of block `b`.
	pub fn refs(&self, b: u32) -> u32 {
		self.refs[b as usize]
	}

	/// Forgets everything (after a fault that may have left blocks half written): every block
	/// free, no prefix cached. Only when no sequence holds a block.
	pub fn reset(&mut self) {
		*self = Self::new(self.total(), self.block_size);
	}

	/// Invariants, for tests: every block is exactly one of held, free, cached; keys and the key
	/// map agree.
	#[cfg(test)]
	pub fn check(&self) {
		for b in 0..self.total() as u32 {
			let i = b as usize;
			let free = self.free.contains(&b);
			let cached = self.refs[i] == 0 && self.key[i].is_some();
			assert_eq!(self.refs[i] == 0, free || cached, "block {b}");
			assert!(!(free && self.key[i].is_some()), "free block {b} keyed");
			if cached {
				assert_eq!(self.evictable.get(&self.released_at[i]), Some(&b));
			}
			if let Some(k) = &self.key[i] {
				assert_eq!(self.by_key.get(k), Some(&b));
			}
		}
		assert_eq!(self.by_key.len(), self.key.iter().flatten().count());
		assert_eq!(self.evictable.len(), (0..self.total()).filter(|&i| self.refs[i] == 0 && self.key[i].is_some()).count());
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	const S: [u8; 32] = [0; 32];

	#[test]
	fn keys_depend_on_scope_adapter_tokens_and_the_whole_prefix() {
		let a = block_key(None, &S, None, &[1, 2]);
		assert_ne!(a, block_key(None, &S, Some(&[0; 32]), &[1, 2]), "base and an adapter differ");
		assert_ne!(block_key(None, &S, Some(&[0; 32]), &[1, 2]), block_key(None, &S, Some(&[1; 32]), &[1, 2]));
		assert_ne!(a, block_key(None, &[9; 32], None, &[1, 2]), "another tenant's scope");
		assert_ne!(a, block_key(None, &S, None, &[2, 1]));
		let b1 = block_key(Some(&a), &S, None, &[3, 4]);
		assert_ne!(b1, block_key(Some(&block_key(None, &S, None, &[1, 5])), &S, None, &[3, 4]), "same block, other prefix");
		assert_eq!(b1, block_key(Some(&block_key(None, &S, None, &[1, 2])), &S, None, &[3, 4]));
		assert_ne!(b1, block_key(Some(&block_key(None, &[9; 32], None, &[1, 2])), &S, None, &[3, 4]), "the scope carries down the chain");
	}

	#[test]
	fn allocation_sharing_caching_and_eviction() {
		let mut m = BlockManager::new(4, 2);
		assert_eq!((m.available(), m.used(), m.blocks_for(5)), (4, 0, 3));
		let (a, b) = (m.allocate().unwrap(), m.allocate().unwrap());
		assert_eq!((a, b), (0, 1), "lowest ids first");
		let k = block_key(None, &S, None, &[7, 7]);
		m.register(a, k);
		m.register(b, k); // the key stays with `a`
		assert_eq!(m.lookup(&k), Some(a));
		assert_eq!(m.refs(a), 2);
		m.release(a);
		m.release(a);
		m.release(b);
		m.check();
		assert_eq!((m.used(), m.cached(), m.available()), (0, 1, 4));
		// A released keyed block is revived by a lookup, not reallocated.
		assert_eq!(m.lookup(&k), Some(a));
		assert_eq!((m.used(), m.cached()), (1, 0));
		m.release(a);
		// Free blocks go first; the cached one only when nothing else is left.
		let got: Vec<u32> = (0..3).map(|_| m.allocate().unwrap()).collect();
		assert_eq!(got, vec![1, 2, 3]);
		assert_eq!(m.lookup(&k), Some(a));
		m.release(a);
		assert_eq!(m.allocate(), Some(a), "evicted");
		assert_eq!(m.lookup(&k), None, "its key is forgotten");
		assert_eq!(m.allocate(), None);
		m.check();
		for b in 0..4 {
			m.release(b);
		}
		assert_eq!(m.available(), 4);
		m.check();
	}

	#[test]
	fn the_least_recently_released_cached_block_is_evicted_first() {
		let mut m = BlockManager::new(3, 1);
		let ks: Vec<BlockKey> = (0..3).map(|i| block_key(None, &S, None, &[i])).collect();
		for k in &ks {
			let b = m.allocate().unwrap();
			m.register(b, *k);
		}
		m.release(2);
		m.release(0);
		m.release(1);
		assert_eq!(m.lookup(&ks[2]), Some(2));
		m.release(2); // now the most recent
		assert_eq!(m.allocate(), Some(0));
		assert_eq!(m.allocate(), Some(1));
		assert_eq!(m.lookup(&ks[2]), Some(2));
		m.check();
	}

	#[test]
	#[should_panic(expected = "released more often than held")]
	fn a_double_release_is_caught() {
		let mut m = BlockManager::new(2, 4);
		let b = m.allocate().unwrap();
		m.release(b);
		m.release(b);
	}
}

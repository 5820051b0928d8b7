// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`Mapping`]: one mapped queue file, and a message's bytes in it. Mechanism, no policy.
//!
//! It maps a file, validates its header once (`layout`), and from then on hands out what lies
//! inside: the header, the participant table, the slot for a position, its payload. A message
//! is written into a claimed slot with its metadata ([`Mapping::write`]), read back after a
//! length check ([`Mapping::message`]), copied between two claimed slots for redelivery
//! ([`Mapping::copy_message`]), and its payload prefetched before a receive claims it. Who may
//! touch which slot, and when, is the claim protocol's business (`ring`); every access here
//! that relies on owning a slot says so in its SAFETY argument.
//!
//! Everything in the mapping is untrusted: another process can write anything there at any
//! time. Only the header's identity is read once and validated; every other word is an atomic
//! or plain bytes, valid for any bit pattern, and every address is computed from the validated
//! geometry, never from the mapping's contents.

use crate::error::{Error, Result};
use crate::layout::{Geometry, Header, Participant, SlotHeader, SLOT_HEADER};
use crate::ring::{Ring, SlotStates};
use crate::sync::{AtomicU64, Ordering};
use memmap2::{MmapOptions, MmapRaw};
use std::fs::File;

/// A queue file mapped into this process, its geometry validated.
pub(crate) struct Mapping {
    map: MmapRaw,
    /// Where everything is, as validated on open: every address below lies inside `map`.
    geometry: Geometry,
    /// The header's option flags, read once on open.
    flags: u32,
    /// The header's delivery limit, read once on open (0: unlimited).
    max_deliveries: u32,
    /// The header's visibility timeout in nanoseconds, read once on open (0: none).
    visibility_timeout_ns: u64,
    /// The header's dead-letter queue, read once on open.
    dead_letter_queue: Option<std::path::PathBuf>,
    /// Where the slots are, copied out of the validated geometry.
    slots: SlotIndex,
    /// `min(SLOT_HEADER + max_message_size, 4 * 64)`: the end of the bytes in a slot that
    /// `prefetch_for_write` fetches, and a bound on those `prefetch_payload` fetches.
    write_prefetch_end: usize,
}

/// Where the slots of a mapping are: finding the slot of a position is a mask, a multiply and an
/// add. A plain copyable value, so that a ring built over it (see [`MappedSlots`]) keeps it in
/// registers: read through a `&Mapping`, each field would be loaded again after every atomic
/// load of the claim loop.
///
/// Invariant (established by `Mapping::open` from the validated geometry): slot `i` of
/// `0..capacity` lies at `slots_at + i * slot_stride`, wholly inside the mapping.
#[derive(Clone, Copy)]
struct SlotIndex {
    /// `capacity - 1` when the capacity is a power of two (slot index by mask), else
    /// `u64::MAX` (by division).
    index_mask: u64,
    /// Number of slots.
    capacity: u64,
    /// Address of slot 0 in the mapping.
    slots_at: usize,
    /// Bytes from one slot to the next.
    slot_stride: usize,
}

impl SlotIndex {
    /// The index (`0..capacity`) of the slot for position `pos`.
    #[inline]
    fn index(self, pos: u64) -> usize {
        (if self.index_mask != u64::MAX {
            pos & self.index_mask
        } else {
            pos % self.capacity
        }) as usize
    }

    /// The address of the slot for position `pos` (inside the mapping, by the invariant).
    #[inline]
    fn slot_at(self, pos: u64) -> usize {
        self.slots_at + self.index(pos) * self.slot_stride
    }

    /// As [`slot_at`](Self::slot_at), for a capacity that is a power of two, which the caller
    /// has checked (with any other, `index_mask` is `u64::MAX` and this would leave the
    /// mapping): no test, no division, and a pure function of `pos`, so that the compiler
    /// computes it once however many times one operation asks for the same slot.
    #[inline]
    fn masked_at(self, pos: u64) -> usize {
        debug_assert!(self.index_mask != u64::MAX);
        self.slots_at + (pos & self.index_mask) as usize * self.slot_stride
    }
}

/// The slots of a mapped queue: their state words (for the claim protocol), and the messages
/// in them.
///
/// With `BY_MASK`, the capacity is a power of two and a position's slot is found by a mask
/// alone: only [`Mapping::ring_by_mask`] builds that kind, and only for such a capacity. The
/// hot paths use it when they can: the test that `SlotIndex::slot_at` makes on every call
/// keeps the compiler from reusing one computation of a slot's address within an operation,
/// and an operation asks for its slot five to seven times.
pub(crate) struct MappedSlots<'a, const BY_MASK: bool = false> {
    mapping: &'a Mapping,
    /// A copy of `mapping.slots` (see [`SlotIndex`]).
    slots: SlotIndex,
}

impl<'a, const BY_MASK: bool> MappedSlots<'a, BY_MASK> {
    /// The slot header for position `pos` (as `Mapping::slot`, from the index in registers).
    #[inline]
    pub(crate) fn slot(&self, pos: u64) -> &'a SlotHeader {
        let at = if BY_MASK {
            self.slots.masked_at(pos)
        } else {
            self.slots.slot_at(pos)
        };
        // SAFETY: as in `Mapping::slot`: `slots` is the mapping's own index, whose invariant puts
        // the slot inside the mapping, which outlives the borrow `'a` that `self` holds (with
        // `BY_MASK`, the capacity is a power of two: see the type's doc).
        unsafe { &*(at as *const SlotHeader) }
    }

    /// Pointer to the payload bytes of the slot for `pos` (`max_message_size` bytes).
    #[inline]
    fn payload(&self, pos: u64) -> *mut u8 {
        // SAFETY: the payload area starts `SLOT_HEADER` bytes into the slot, inside it
        // (`slot_stride >= SLOT_HEADER + max_message_size`), so inside the mapping. An in-bounds
        // `add` (not `wrapping_add`) also tells the compiler the result is not null, which
        // spares the receive a test of it.
        unsafe { (self.slot(pos) as *const SlotHeader as *mut u8).add(SLOT_HEADER) }
    }

    /// Writes `msg` into the claimed slot for `pos`, with a new message's metadata.
    #[inline]
    pub(crate) fn write(&self, pos: u64, msg: &[u8]) {
        debug_assert!(msg.len() <= self.mapping.max_message_size());
        // SAFETY: we own the claimed slot (see `ring`: between its claim and its publish only
        // its claimer writes it), its payload area holds `max_message_size >= msg.len()` bytes
        // inside the mapping, and `msg` cannot overlap the mapping's slot we exclusively own.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.payload(pos), msg.len()) };
        self.mapping.write_meta(self.slot(pos), pos, msg.len());
    }

    /// The message at a claimed position, after checking its length against the maximum; a
    /// corrupt length is returned as the error (the caller decides what becomes of the slot).
    #[inline]
    pub(crate) fn message(&self, pos: u64) -> std::result::Result<&'a [u8], usize> {
        let len = self.slot(pos).len.load(Ordering::Relaxed) as usize;
        if len > self.mapping.max_message_size() {
            return Err(len);
        }
        // SAFETY: we own the claimed slot (ring invariant 3); `len <= max_message_size`, so the
        // bytes lie inside the slot's payload area, inside the mapping, which outlives the
        // borrow of `self`. An honest peer does not write a slot it does not own; a hostile one
        // can change the bytes' values, but `u8` has no invalid values.
        Ok(unsafe { std::slice::from_raw_parts(self.payload(pos), len) })
    }
}

impl<const BY_MASK: bool> SlotStates for MappedSlots<'_, BY_MASK> {
    #[inline]
    fn state(&self, pos: u64) -> &AtomicU64 {
        &self.slot(pos).state
    }
    #[inline]
    fn prepare_write(&self, pos: u64) {
        self.mapping.prefetch_for_write(self.slot(pos));
    }

    /// When the slots do not wrap round the end of the ring, they follow the one of `pos` in
    /// memory: an add each, instead of a mask and a multiply.
    #[inline(always)]
    fn states_after<const N: usize>(&self, pos: u64) -> [u64; N] {
        let slots = self.slots;
        let index = slots.index(pos);
        let mut words = [0; N];
        if index + N < slots.capacity as usize {
            let mut at = slots.slots_at + index * slots.slot_stride;
            for word in &mut words {
                at += slots.slot_stride;
                // SAFETY: the loop visits slots `index + 1 ..= index + N`, all below
                // `capacity`, so `at` is the address of one of them, inside the mapping by
                // `SlotIndex`'s invariant (the mapping outlives the borrow `self` holds); it
                // is 64-aligned and its fields are atomics, as in `slot`.
                let slot = unsafe { &*(at as *const SlotHeader) };
                *word = slot.state.load(Ordering::Acquire);
            }
        } else {
            for (ahead, word) in (1..).zip(&mut words) {
                *word = self.state(pos.wrapping_add(ahead)).load(Ordering::Acquire);
            }
        }
        words
    }
}

impl Mapping {
    /// Maps the first `len` bytes of `file` (at least a `Header`, checked by the caller) and
    /// validates the header's identity against that length.
    pub(crate) fn open(file: &File, len: u64) -> Result<Mapping> {
        let map = MmapOptions::new().len(len as usize).map_raw(file)?;
        // SAFETY: the mapping is at least `size_of::<Header>()` bytes (checked by the caller)
        // and page-aligned; `Identity` is plain integers and bytes, valid for any bit pattern.
        // The fields are read once here and validated before anything else is trusted.
        let (geometry, flags, max_deliveries, visibility_timeout_ns, dead_letter_queue) = unsafe {
            let header = &*(map.as_ptr() as *const Header);
            let id = &header.identity.0;
            (
                Geometry::validate(id, len)?,
                id.flags,
                id.max_deliveries,
                id.visibility_timeout_ns,
                header.dead_letter_queue.decode()?,
            )
        };
        let slots = SlotIndex {
            index_mask: if geometry.capacity.is_power_of_two() {
                u64::from(geometry.capacity) - 1
            } else {
                u64::MAX
            },
            capacity: u64::from(geometry.capacity),
            slots_at: map.as_ptr() as usize + geometry.slots_offset as usize,
            slot_stride: geometry.slot_stride as usize,
        };
        Ok(Mapping {
            map,
            geometry,
            flags,
            max_deliveries,
            visibility_timeout_ns,
            dead_letter_queue,
            slots,
            write_prefetch_end: (SLOT_HEADER + geometry.max_message_size as usize).min(4 * 64),
        })
    }

    /// The validated geometry.
    pub(crate) fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The header's option flags, as validated on open.
    pub(crate) fn flags(&self) -> u32 {
        self.flags
    }

    /// The header's delivery limit, as read on open (0: unlimited).
    pub(crate) fn max_deliveries(&self) -> u32 {
        self.max_deliveries
    }

    /// The header's visibility timeout in nanoseconds, as validated on open (0: none).
    pub(crate) fn visibility_timeout_ns(&self) -> u64 {
        self.visibility_timeout_ns
    }

    /// The queue's identity: its creation time (ns since the Unix epoch), written once at
    /// creation.
    pub(crate) fn identity(&self) -> u64 {
        self.header().identity.0.created_unix_ns
    }

    /// The header's dead-letter queue, as read on open.
    pub(crate) fn dead_letter_queue(&self) -> Option<&std::path::Path> {
        self.dead_letter_queue.as_deref()
    }

    /// Where the mapping lies in this process: its address and length.
    pub(crate) fn span(&self) -> (usize, usize) {
        (self.map.as_ptr() as usize, self.map.len())
    }

    /// Number of slots.
    pub(crate) fn capacity(&self) -> u32 {
        self.geometry.capacity
    }

    /// Largest message, in bytes.
    pub(crate) fn max_message_size(&self) -> usize {
        self.geometry.max_message_size as usize
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: `open` checked that the mapping holds at least a `Header` and is page-aligned;
        // every field is an atomic or plain integer (valid for any bits) and the mapping lives as
        // long as `self`. Other processes mutate only the atomic fields.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    pub(crate) fn participants(&self) -> &[Participant] {
        // SAFETY: `Geometry::validate` checked that the table lies inside the mapping at a
        // 128-aligned offset; entries are atomics (valid for any bits), living as long as `self`.
        unsafe {
            std::slice::from_raw_parts(
                self.map
                    .as_ptr()
                    .add(self.geometry.participants_offset as usize)
                    as *const Participant,
                crate::layout::PARTICIPANTS as usize,
            )
        }
    }

    /// The claim protocol over this file's cursors and slots.
    #[inline]
    pub(crate) fn ring(&self) -> Ring<'_, MappedSlots<'_>> {
        self.ring_over(MappedSlots {
            mapping: self,
            slots: self.slots,
        })
    }

    /// As [`ring`](Self::ring), finding slots by mask alone, if the capacity is a power of two
    /// (see [`MappedSlots`]).
    #[inline]
    pub(crate) fn ring_by_mask(&self) -> Option<Ring<'_, MappedSlots<'_, true>>> {
        (self.slots.index_mask != u64::MAX).then(|| {
            self.ring_over(MappedSlots {
                mapping: self,
                slots: self.slots,
            })
        })
    }

    #[inline]
    fn ring_over<S: SlotStates>(&self, slots: S) -> Ring<'_, S> {
        let header = self.header();
        Ring::new(
            &header.tail.0,
            &header.head.0.head,
            &header.head.0.closing,
            slots,
            u64::from(self.geometry.capacity),
        )
    }

    /// The slot header for position `pos`.
    #[inline]
    pub(crate) fn slot(&self, pos: u64) -> &SlotHeader {
        // SAFETY: `slot_at` takes `index < capacity` (a mask of `capacity - 1` for a power of
        // two, else the remainder of a division by it), and validation proved `slots_offset +
        // capacity * stride` equals the mapped length, so the slot lies inside the mapping,
        // which lives as long as `self` (`slots_at` is its address of slot 0); it is 64-aligned
        // (offset 128-aligned, stride a multiple of 64). Its fields are atomics.
        unsafe { &*(self.slots.slot_at(pos) as *const SlotHeader) }
    }

    /// Asks the CPU to start fetching, for writing, the payload lines of `slot` (one of this
    /// mapping's) after the first (up to three), before a send claims it: their last writer or reader was
    /// a consumer on another core, and the copy would otherwise wait for each line in turn.
    /// The first line, which holds the state word that consumers poll, is left alone.
    /// (Measured with `shmq bench`, same runs: the busy round trip went from about 1.4x to
    /// 1.2x `spsc_ring`, single-message throughput from about 0.2x to 0.8x `spsc_ring_tput`.)
    /// A hint: `prefetchw` reads nothing into the program and cannot fault.
    #[inline]
    pub(crate) fn prefetch_for_write(&self, slot: &SlotHeader) {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            let slot = slot as *const SlotHeader as *const u8;
            // Three fixed offsets, each a compare and a hint (no loop).
            for offset in [64, 2 * 64, 3 * 64] {
                if offset < self.write_prefetch_end {
                    // SAFETY: `offset < SLOT_HEADER + max_message_size <= slot_stride`, so the
                    // address lies inside this slot, inside the mapping (see `slot`);
                    // `prefetchw` (executed as a no-op by CPUs without it) touches no register
                    // or memory the program sees and never faults.
                    unsafe {
                        std::arch::asm!(
                            "prefetchw [{0}]",
                            in(reg) slot.wrapping_add(offset),
                            options(nostack, preserves_flags, readonly)
                        )
                    };
                }
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        let _ = slot;
    }

    /// Asks the CPU to start fetching the payload of the message in `slot`, one of this
    /// mapping's (the 64-byte lines after the one holding the state word, up to its length
    /// `len`), when a receive has seen it committed and is about to claim it. The claim is a
    /// locked CAS, and a locked instruction lets no later load start before it completes:
    /// without this hint the payload's lines would start their trip from the sender's core
    /// only after the CAS, one transfer after another. (Measured with `shmq bench`, five
    /// interleaved rounds: about 5 % off the 64-byte busy round trip in quiet phases, 13 % in
    /// noisy ones.) A hint only: it reads nothing into the program and cannot fault.
    #[inline]
    pub(crate) fn prefetch_payload(&self, slot: &SlotHeader, len: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let slot = slot as *const SlotHeader as *const i8;
            // At most three lines: beyond that the copy streams anyway. `len` is not checked
            // yet (the claim comes first): a corrupt one only sends the hint past the slot.
            let end = SLOT_HEADER.saturating_add(len);
            for offset in [64, 2 * 64, 3 * 64] {
                if offset < end {
                    // SAFETY: `_mm_prefetch` is a hint (SSE, x86-64 baseline) that loads
                    // nothing into the program and never faults, whatever the address; the
                    // address is computed with `wrapping_add`, which is defined for any
                    // offset. For a length the receive will accept (at most
                    // `max_message_size`) it lies inside this slot.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(slot.wrapping_add(offset)) };
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (slot, len);
    }

    /// Pointer to the payload bytes of the slot for `pos` (`max_message_size` bytes).
    #[inline]
    pub(crate) fn payload(&self, pos: u64) -> *mut u8 {
        self.ring().slots.payload(pos)
    }

    /// `TooLarge` if a message of `len` bytes does not fit a slot.
    #[inline]
    pub(crate) fn check_len(&self, len: usize) -> Result<()> {
        if len > self.max_message_size() {
            return Err(Error::TooLarge {
                len,
                max: self.max_message_size(),
            });
        }
        Ok(())
    }

    /// Writes `msg` into the claimed slot for `pos`, with a new message's metadata.
    #[inline]
    pub(crate) fn write(&self, pos: u64, msg: &[u8]) {
        self.ring().slots.write(pos, msg)
    }

    /// The metadata of a new message at `pos`: its length, no failed deliveries, and its id.
    #[inline]
    pub(crate) fn write_meta(&self, slot: &SlotHeader, pos: u64, len: usize) {
        slot.len.store(len as u32, Ordering::Relaxed);
        slot.deliveries.store(0, Ordering::Relaxed);
        slot.id.store(pos, Ordering::Relaxed);
        slot.origin.store(0, Ordering::Relaxed);
        slot.origin_id.store(0, Ordering::Relaxed);
    }

    /// The message at a claimed position, after checking its length against the maximum; a
    /// corrupt length is returned as the error (the caller decides what becomes of the slot).
    #[inline]
    pub(crate) fn message(&self, pos: u64) -> std::result::Result<&[u8], usize> {
        self.ring().slots.message(pos)
    }

    /// How many times the message at position `pos` has been delivered to consumers that
    /// died holding it (the slot's `deliveries` word; untrusted, like all of the mapping).
    pub(crate) fn failed_deliveries(&self, pos: u64) -> u32 {
        self.slot(pos).deliveries.load(Ordering::Relaxed)
    }

    /// Records one more delivery that ended with its consumer's death, in a slot we own before
    /// publishing it again.
    pub(crate) fn count_failed_delivery(&self, pos: u64) {
        let slot = self.slot(pos);
        let failed = slot.deliveries.load(Ordering::Relaxed).saturating_add(1);
        slot.deliveries.store(failed, Ordering::Relaxed);
    }

    /// Copies a message (payload, length, id, delivery count) between two slots we both own,
    /// for redelivery. A corrupt length is clamped to the maximum: the bytes are copied as they
    /// are, and the receiver's length check reports what it finds.
    pub(crate) fn copy_message(&self, from: u64, to: u64) {
        let len =
            (self.slot(from).len.load(Ordering::Relaxed) as usize).min(self.max_message_size());
        // SAFETY: we own both claimed slots (ring invariant 3), which are distinct (two
        // positions less than a lap apart map to different slots when the tail has not come
        // round to `from`); each payload area holds `max_message_size >= len` bytes inside the
        // mapping.
        unsafe { std::ptr::copy_nonoverlapping(self.payload(from), self.payload(to), len) };
        let dst = self.slot(to);
        dst.len.store(
            self.slot(from).len.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        dst.deliveries.store(
            self.slot(from).deliveries.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        for (to_word, from_word) in [
            (&dst.id, &self.slot(from).id),
            (&dst.origin, &self.slot(from).origin),
            (&dst.origin_id, &self.slot(from).origin_id),
        ] {
            to_word.store(from_word.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

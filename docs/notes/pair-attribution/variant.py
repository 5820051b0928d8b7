# Applies one throw-away attribution variant to the worktree (src/ and examples/ reset from HEAD
# first). The variants are deliberately wrong code: they remove one component of the hot path of
# Queue::try_send / Queue::try_recv so that .ci/callgrind can count what it cost. Never commit them.
import subprocess
import sys

name = sys.argv[1]
root = sys.argv[2] if len(sys.argv) > 2 else '/work/wt-attr'
subprocess.run(['git', '-C', root, 'checkout', '--', 'src', 'examples'], check=True)


def edit(path, old, new, count=1):
    p = f'{root}/{path}'
    s = open(p).read()
    n = s.count(old)
    assert n == count, (name, path, old, n)
    open(p, 'w').write(s.replace(old, new))


Q, R, M = 'src/queue.rs', 'src/ring.rs', 'src/mapping.rs'

# --- pieces shared by several variants -------------------------------------------------------
LANE = """    fn claimer_as(&self, role: u32) -> Result<Claimer<'_>> {
        let lane = self.lane()?;"""


def lane_fixed(cond):
    # The handle's own entry instead of the calling thread's lane (no thread-local lookup).
    edit(Q, LANE, f"""    fn claimer_as(&self, role: u32) -> Result<Claimer<'_>> {{
        let lane = if {cond} {{ self.me }} else {{ self.lane()? }};""")


ROLE = "        record_role(entry, role);\n        Ok(Claimer {"


def no_role(cond):
    edit(Q, ROLE, f"        if !({cond}) {{ record_role(entry, role); }}\n        Ok(Claimer {{")


ANNOUNCE = "        me.announcement.announce(first, count, side);\n        if STOP == STOP_AFTER_ANNOUNCEMENT {"


def no_announce(cond):
    edit(R, ANNOUNCE, f"        if !({cond}) {{ me.announcement.announce(first, count, side); }}\n        if STOP == STOP_AFTER_ANNOUNCEMENT {{")


STAMP = "                    self.stamp_run(claim, me.token, phase);"


def no_stamp(cond):
    edit(R, STAMP, f"                    if !({cond}) {{ self.stamp_run(claim, me.token, phase); }}")


SEND = 'role == participant::ROLE_SENDER'
RECV = 'role == participant::ROLE_RECEIVER'
RSEND = 'matches!(side, Side::Send)'
RRECV = 'matches!(side, Side::Recv)'

WAKE_SEND = """        ring.publish(claim.first);
        self.wake(&self.header().recv_wait.0);"""
WAKE_RECV = """    fn release_on<S: SlotStates>(&self, ring: &Ring<'_, S>, claim: Claim) {
        for pos in claim.positions() {
            ring.release(pos);
        }
        self.wake(&self.header().send_wait.0);"""
PREFETCH_SEND = """    fn prepare_write(&self, pos: u64) {
        self.mapping.prefetch_for_write(self.slot(pos));"""
PREFETCH_RECV = "        self.mapping.prefetch_payload(slot, len);\n        accept(len)"
COPY_IN = "        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.payload(pos), msg.len()) };\n"
COPY_OUT = "            buf[..len].copy_from_slice(msg);"
META = """        slot.deliveries.store(0, Ordering::Relaxed);
        slot.id.store(pos, Ordering::Relaxed);
        slot.origin.store(0, Ordering::Relaxed);
        slot.origin_id.store(0, Ordering::Relaxed);"""
TAKES = """        let capacity = buf.len();
        let max = self.max_message_size();
        move |len| len <= capacity || len > max"""
MSG_CHECK = """        let len = self.slot(pos).len.load(Ordering::Relaxed) as usize;
        if len > self.mapping.max_message_size() {
            return Err(len);
        }"""
FITS = "        let fits = len <= buf.len();"
SEND_LEN = "        self.mapping.check_len(msg.len())?;\n        let (claim, _) = self.claim_send_on(ring, 1, deadline)?;"
BY_MASK = "        (self.slots.index_mask != u64::MAX).then(|| {"
CLOSED_SEND = "        if tail & CLOSED == 0 && self.slots.state(tail).load(Ordering::Acquire) == empty_state(tail)"

# --- a bare Vyukov pair, on the ring's cursors and slots --------------------------------------
ESSENTIAL_SEND = """    pub fn try_send(&self, msg: &[u8]) -> Result<()> {
        // ATTRIBUTION VARIANT: a bare Vyukov send (length check kept: memory safety).
        let ring = self.mapping.ring_by_mask().unwrap();
        let max = self.mapping.max_message_size();
        if msg.len() > max {
            return Err(Error::TooLarge { len: msg.len(), max });
        }
        let tail = ring.tail.load(Ordering::Acquire);
        let slot = ring.slots.slot(tail);
        if slot.state.load(Ordering::Acquire) != ring::empty_state(tail) {
            return Err(Error::Full);
        }
        if ring
            .tail
            .compare_exchange(tail, tail.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::Full);
        }
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), ring.slots.payload(tail), msg.len()) };
        slot.len.store(msg.len() as u32, Ordering::Relaxed);
        slot.state.store(ring::full_state(tail), Ordering::Release);
        Ok(())
    }
    #[allow(dead_code)]\n    pub(crate) fn try_send_orig(&self, msg: &[u8]) -> Result<()> {"""
ESSENTIAL_RECV = """    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        // ATTRIBUTION VARIANT: a bare Vyukov receive (length checks kept: memory safety).
        let ring = self.mapping.ring_by_mask().unwrap();
        let head = ring.head.load(Ordering::Acquire);
        let slot = ring.slots.slot(head);
        if slot.state.load(Ordering::Acquire) != ring::full_state(head) {
            return Err(Error::Empty);
        }
        let len = slot.len.load(Ordering::Relaxed) as usize;
        if len > buf.len().min(self.mapping.max_message_size()) {
            return Err(Error::BufferTooSmall { needed: len });
        }
        if ring
            .head
            .compare_exchange(head, head.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::Empty);
        }
        unsafe { std::ptr::copy_nonoverlapping(ring.slots.payload(head), buf.as_mut_ptr(), len) };
        slot.state.store(ring::empty_state(head.wrapping_add(ring.capacity)), Ordering::Release);
        Ok(len)
    }
    #[allow(dead_code)]\n    pub(crate) fn try_recv_orig(&self, buf: &mut [u8]) -> Result<usize> {"""


def essential():
    edit(M, BY_MASK, "        true.then(|| {")
    edit(M, "\n    fn payload(&self, pos: u64) -> *mut u8 {", "\n    pub(crate) fn payload(&self, pos: u64) -> *mut u8 {")
    edit(Q, "    pub fn try_send(&self, msg: &[u8]) -> Result<()> {", ESSENTIAL_SEND)
    edit(Q, "    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {", ESSENTIAL_RECV)


# --- every guarantee of the hot path kept, written out bare (no generic claim machinery) -------
BARE_SEND = """    pub fn try_send(&self, msg: &[u8]) -> Result<()> {
        // ATTRIBUTION VARIANT: the send's fast path with every guarantee, written out bare;
        // anything else goes to the real implementation.
        let Some(ring) = self.mapping.ring_by_mask() else {
            return self.send_fallback(msg);
        };
        let max = self.mapping.max_message_size();
        if msg.len() > max {
            return Err(Error::TooLarge { len: msg.len(), max });
        }
        let lane = self.lane()?;
        let entry = &self.participants()[lane.index as usize];
        record_role(entry, participant::ROLE_SENDER);
        let tail = ring.tail.load(Ordering::Acquire);
        let slot = ring.slots.slot(tail);
        if tail & ring::CLOSED != 0 || slot.state.load(Ordering::Acquire) != ring::empty_state(tail) {
            return self.send_fallback(msg);
        }
        entry.announcement.announce(tail, 1, Side::Send);
        if ring
            .tail
            .compare_exchange(tail, tail.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            entry.announcement.clear();
            return self.send_fallback(msg);
        }
        slot.state.store(
            ring::SlotState::new(tail, lane.token, ring::Phase::Writing).encode(),
            Ordering::Release,
        );
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), ring.slots.payload(tail), msg.len()) };
        self.mapping.write_meta(slot, tail, msg.len());
        slot.state.store(ring::full_state(tail), Ordering::Release);
        self.wake(&self.header().recv_wait.0);
        Ok(())
    }
    #[cold]
    #[inline(never)]
    fn send_fallback(&self, msg: &[u8]) -> Result<()> {
        self.try_send_orig(msg)
    }
    #[allow(dead_code)]\n    pub(crate) fn try_send_orig(&self, msg: &[u8]) -> Result<()> {"""
BARE_RECV = """    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        // ATTRIBUTION VARIANT: the receive's fast path with every guarantee, written out bare;
        // anything else goes to the real implementation.
        let Some(ring) = self.mapping.ring_by_mask() else {
            return self.recv_fallback(buf);
        };
        let head = ring.head.load(Ordering::Acquire);
        let slot = ring.slots.slot(head);
        if slot.state.load(Ordering::Acquire) != ring::full_state(head) {
            return self.recv_fallback(buf);
        }
        let max = self.mapping.max_message_size();
        let seen = slot.len.load(Ordering::Relaxed) as usize;
        if seen > buf.len() && seen <= max {
            return self.recv_fallback(buf);
        }
        let lane = self.lane()?;
        let entry = &self.participants()[lane.index as usize];
        record_role(entry, participant::ROLE_RECEIVER);
        entry.announcement.announce(head, 1, Side::Recv);
        if ring
            .head
            .compare_exchange(head, head.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            entry.announcement.clear();
            return self.recv_fallback(buf);
        }
        slot.state.store(
            ring::SlotState::new(head, lane.token, ring::Phase::Reading).encode(),
            Ordering::Release,
        );
        let len = slot.len.load(Ordering::Relaxed) as usize;
        if len > max || len > buf.len() {
            return self.recv_corrupt(head);
        }
        unsafe { std::ptr::copy_nonoverlapping(ring.slots.payload(head), buf.as_mut_ptr(), len) };
        slot.state.store(ring::empty_state(head.wrapping_add(ring.capacity)), Ordering::Release);
        self.wake(&self.header().send_wait.0);
        Ok(len)
    }
    #[cold]
    #[inline(never)]
    fn recv_fallback(&self, buf: &mut [u8]) -> Result<usize> {
        self.try_recv_orig(buf)
    }
    #[cold]
    #[inline(never)]
    fn recv_corrupt(&self, pos: u64) -> Result<usize> {
        self.ring().release(pos);
        self.wake(&self.header().send_wait.0);
        Err(Error::corrupt("message length changed while the message was committed"))
    }
    #[allow(dead_code)]\n    pub(crate) fn try_recv_orig(&self, buf: &mut [u8]) -> Result<usize> {"""


def guarantees_bare():
    edit(M, "\n    fn payload(&self, pos: u64) -> *mut u8 {", "\n    pub(crate) fn payload(&self, pos: u64) -> *mut u8 {")
    edit(R, "    #[inline]\n    fn announce(&self", "    #[inline]\n    pub(crate) fn announce(&self")
    edit(Q, "    pub fn try_send(&self, msg: &[u8]) -> Result<()> {", BARE_SEND)
    edit(Q, "    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {", BARE_RECV)


V = {}
V['baseline'] = lambda: None
V['harness-loop'] = lambda: edit('examples/callgrind.rs', """        q.try_send(black_box(&msg)).map_err(|e| e.to_string())?;
        let len = q.try_recv(black_box(&mut buf)).map_err(|e| e.to_string())?;""", """        black_box(&msg);
        let len = black_box(&mut buf).len();
        let _ = q;""")
V['harness-calls'] = lambda: (
    edit(Q, "    pub fn try_send(&self, msg: &[u8]) -> Result<()> {\n", "    pub fn try_send(&self, msg: &[u8]) -> Result<()> {\n        if !msg.is_empty() { return Ok(()); }\n"),
    edit(Q, "    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {\n", "    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {\n        if !buf.is_empty() { return Ok(buf.len()); }\n"))
V['harness-stubs'] = lambda: (
    edit(Q, "    pub fn try_send(&self, msg: &[u8]) -> Result<()> {\n", "    pub fn try_send(&self, msg: &[u8]) -> Result<()> {\n        let _ = msg;\n        Ok(())\n    }\n    #[allow(dead_code)]\n    pub(crate) fn try_send_orig(&self, msg: &[u8]) -> Result<()> {\n"),
    edit(Q, "    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {\n", "    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {\n        Ok(buf.len())\n    }\n    #[allow(dead_code)]\n    pub(crate) fn try_recv_orig(&self, buf: &mut [u8]) -> Result<usize> {\n"))
V['no-copy-in'] = lambda: edit(M, COPY_IN, "")
V['no-copy-out'] = lambda: edit(Q, COPY_OUT, "            let _ = msg;")
V['no-copies'] = lambda: (edit(M, COPY_IN, ""), edit(Q, COPY_OUT, "            let _ = msg;"))
V['no-lane-send'] = lambda: lane_fixed(SEND)
V['no-lane-recv'] = lambda: lane_fixed(RECV)
V['no-lane'] = lambda: lane_fixed('true')
V['no-lane-unchecked'] = lambda: (lane_fixed('true'), edit(Q, """        let entry = &self.participants()[lane.index as usize];
        record_role(entry, role);""", """        let entry = unsafe { self.participants().get_unchecked(lane.index as usize) };
        record_role(entry, role);"""))
V['no-announce-send'] = lambda: no_announce(RSEND)
V['no-announce-recv'] = lambda: no_announce(RRECV)
V['no-announce'] = lambda: no_announce('true')
V['no-stamp-send'] = lambda: no_stamp(RSEND)
V['no-stamp-recv'] = lambda: no_stamp(RRECV)
V['no-stamp'] = lambda: no_stamp('true')
V['no-wake-send'] = lambda: edit(Q, WAKE_SEND, "        ring.publish(claim.first);")
V['no-wake-recv'] = lambda: edit(Q, WAKE_RECV, WAKE_RECV.rsplit("\n", 1)[0])
V['no-wakes'] = lambda: (V['no-wake-send'](), V['no-wake-recv']())
V['no-prefetch-send'] = lambda: edit(M, PREFETCH_SEND, "    fn prepare_write(&self, pos: u64) {\n        let _ = pos;")
V['no-prefetch-recv'] = lambda: edit(Q, PREFETCH_RECV, "        let _ = slot;\n        accept(len)")
V['no-prefetches'] = lambda: (V['no-prefetch-send'](), V['no-prefetch-recv']())
V['no-meta-send'] = lambda: edit(M, META, "        let _ = pos;")
V['no-len-check-send'] = lambda: edit(Q, SEND_LEN, "        let (claim, _) = self.claim_send_on(ring, 1, deadline)?;")
V['no-check-before-recv'] = lambda: edit(Q, TAKES, "        let _ = buf;\n        |_| true")
V['no-check-after-recv'] = lambda: (edit(M, MSG_CHECK, "        let len = self.slot(pos).len.load(Ordering::Relaxed) as usize;"),
                                    edit(Q, FITS, "        let fits = true;"))
V['no-checks-recv'] = lambda: (V['no-check-before-recv'](), V['no-check-after-recv']())
V['no-role-send'] = lambda: no_role(SEND)
V['no-role-recv'] = lambda: no_role(RECV)
V['no-role'] = lambda: no_role('true')
V['no-closed-send'] = lambda: edit(R, CLOSED_SEND, "        if self.slots.state(tail).load(Ordering::Acquire) == empty_state(tail)")
V['no-by-mask-check'] = lambda: edit(M, BY_MASK, "        true.then(|| {")
V['no-attribution'] = lambda: (lane_fixed('true'), no_role('true'), no_announce('true'), no_stamp('true'))
V['essential'] = essential
V['guarantees-bare'] = guarantees_bare
V['guarantees-bare-prefetch'] = lambda: (guarantees_bare(),
    edit(Q, "        entry.announcement.announce(tail, 1, Side::Send);", "        self.mapping.prefetch_for_write(slot);\n        entry.announcement.announce(tail, 1, Side::Send);"),
    edit(Q, "        let seen = slot.len.load(Ordering::Relaxed) as usize;\n", "        let seen = slot.len.load(Ordering::Relaxed) as usize;\n        self.mapping.prefetch_payload(slot, seen);\n"))
def guarantees_bare_look(prefetch=True):
    # As guarantees-bare-prefetch, with the receive's first look and empty poll exactly as
    # try_recv_on has them (look_recv, then idle_poll), so that the empty poll keeps its cost.
    V['guarantees-bare-prefetch' if prefetch else 'guarantees-bare']()
    edit(Q, """        let head = ring.head.load(Ordering::Acquire);
        let slot = ring.slots.slot(head);
        if slot.state.load(Ordering::Acquire) != ring::full_state(head) {
            return self.recv_fallback(buf);
        }""", """        let (head, word) = match ring.look_recv() {
            Ok(seen) => seen,
            Err(ClaimError::WouldBlock) if !self.idle_poll() => return Err(Error::Empty),
            Err(_) => return self.recv_fallback(buf),
        };
        let slot = ring.slots.slot(head);
        if word != ring::full_state(head) {
            return self.recv_fallback(buf);
        }""")
V['guarantees-bare-look'] = guarantees_bare_look
V['guarantees-bare-look-no-prefetch'] = lambda: guarantees_bare_look(False)
def guarantees_bare_look_one_line():
    # As guarantees-bare-look, each prefetch reduced to one unconditional hint for the payload's
    # first line (the slot's second): what a cheaper prefetch would cost, not what it would buy.
    guarantees_bare_look()
    edit(Q, "        self.mapping.prefetch_for_write(slot);\n", """        unsafe {
            std::arch::asm!("prefetchw [{0}]", in(reg) (slot as *const _ as *const u8).wrapping_add(64), options(nostack, preserves_flags, readonly))
        };
""")
    edit(Q, "        self.mapping.prefetch_payload(slot, seen);\n", """        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((slot as *const _ as *const i8).wrapping_add(64))
        };
""")
V['guarantees-bare-look-one-line'] = guarantees_bare_look_one_line
V['guarantees-bare-no-meta'] = lambda: (guarantees_bare(), edit(M, META, '        let _ = pos;'))

if name == 'list':
    print(' '.join(V))
    raise SystemExit(0)
if name not in V:
    raise SystemExit('unknown variant ' + name)
V[name]()

// SPDX-License-Identifier: MIT OR Apache-2.0
//! Moving messages between a queue and the shell: `shmq send` turns lines of stdin into
//! messages, `shmq recv` turns messages into lines of stdout.
//!
//! Both sides batch what is already at hand (complete lines in the input buffer; messages ready
//! in the queue) and never wait to fill a batch, so an interactive pipeline sees each line at
//! once while a bulk one pays for the cursors and the `write` calls once per batch. The
//! exception is `recv` into a pipe or a socket, which moves one message at a time (below).
//!
//! `recv` releases a message from the queue only once it is delivered: into a pipe or a
//! socket, once the reader has read it (one message at a time, see [`recv`]); into a file or a
//! terminal, once its line has been written and flushed. A receiver that dies, or whose reader
//! goes away, leaves the messages it had not delivered claimed rather than freed, and they go
//! back to the queue (with their delivery count raised) once the process or its handle is
//! gone, so a `shmq recv` killed at any instant, or whose reader stops, loses nothing: at most
//! the line in flight is printed twice. `--release-on-write` ([`Release::OnWrite`]) trades that
//! for speed into pipes: batches released once written, lost if left unread.
//!
//! `send` holds a claimed slot only between claiming it and publishing it, inside one library
//! call; a `send` killed there leaves a slot that recovery turns into a tombstone receivers skip
//! (`abandoned_sends`), so it never wedges the queue.

use crate::failure::Failure;
use shmq::{Error, Queue, RecvGuard};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Most lines sent by one claim. Only lines already complete in the input buffer join a batch.
const SEND_BATCH: usize = 64;
/// Most messages written by one flush. Only messages ready now join a batch.
const RECV_BATCH: usize = 64;
/// Size of the stdin and stdout buffers.
const IO_BUFFER: usize = 64 * 1024;
/// How often a receiver waiting for a message checks that its output still has a reader.
const READER_CHECK: Duration = Duration::from_millis(250);
/// How long a receiver waiting for its reader to read a message looks without sleeping.
const DRAIN_SPIN: Duration = Duration::from_micros(50);
/// The first sleep of a receiver waiting for its reader, after [`DRAIN_SPIN`]; each next one
/// is twice as long, up to [`LAST_NAP`].
const FIRST_NAP: Duration = Duration::from_micros(50);
/// The longest sleep of a receiver waiting for its reader: how late at most it notices that a
/// slow reader has read a message, and the period at which it looks while one does not.
const LAST_NAP: Duration = Duration::from_millis(10);

/// `shmq send`: each line of stdin (without its `\n`) becomes one message, in order; waits
/// while the queue is full; returns at the end of input. A final line without `\n` is sent too.
///
/// A line longer than the maximum message size fails the command after every earlier line was
/// sent; nothing after it is read.
pub fn send(path: &Path) -> Result<(), Failure> {
    let queue = Queue::open(path)?;
    let max = queue.max_message_size();
    let batch_limit = SEND_BATCH.min(queue.capacity() as usize);
    let mut input = BufReader::with_capacity(IO_BUFFER, io::stdin().lock());
    // Line buffers are reused from batch to batch.
    let mut lines: Vec<Vec<u8>> = vec![Vec::new(); batch_limit];
    let mut next_line: u64 = 1;
    loop {
        // Wait for one line, then take the lines already complete in the buffer.
        let mut read = 0;
        let mut stop = None;
        loop {
            match read_line(&mut input, max, &mut lines[read]) {
                Ok(Line::Read) => read += 1,
                Ok(Line::End) => stop = Some(Ok(())),
                Ok(Line::TooLong(len)) => {
                    stop = Some(Err(Failure::Line {
                        line: next_line + read as u64,
                        source: Error::TooLarge { len, max },
                    }))
                }
                Err(e) => stop = Some(Err(Failure::Stdin(e))),
            }
            if stop.is_some() || read == batch_limit || !input.buffer().contains(&b'\n') {
                break;
            }
        }
        send_in_order(&queue, &lines[..read], next_line)?;
        next_line += read as u64;
        if let Some(result) = stop {
            return result;
        }
    }
}

/// What [`read_line`] found.
enum Line {
    /// A line is in the buffer, without its `\n`.
    Read,
    /// The input has ended.
    End,
    /// The next line is this many bytes long, more than the maximum; it was skipped.
    TooLong(usize),
}

/// Reads the next line into `line` (cleared first), holding at most `max + 1` bytes of it in
/// memory whatever the input.
fn read_line(input: &mut impl BufRead, max: usize, line: &mut Vec<u8>) -> io::Result<Line> {
    line.clear();
    let n = Read::take(&mut *input, max as u64 + 1).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(Line::End);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Line::Read);
    }
    if line.len() <= max {
        return Ok(Line::Read); // the last line, without a newline
    }
    Ok(Line::TooLong(line.len() + skip_line(input)?))
}

/// Consumes input up to and including the next `\n`; returns the bytes before it.
fn skip_line(input: &mut impl BufRead) -> io::Result<usize> {
    let mut skipped = 0;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(skipped);
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(end) => {
                input.consume(end + 1);
                return Ok(skipped + end);
            }
            None => {
                let len = buf.len();
                input.consume(len);
                skipped += len;
            }
        }
    }
}

/// Sends every message of `lines`, in order, waiting for room; `first_line` numbers the first
/// one in errors.
fn send_in_order(queue: &Queue, lines: &[Vec<u8>], first_line: u64) -> Result<(), Failure> {
    let mut sent = 0;
    while sent < lines.len() {
        sent += queue
            .send_batch(&lines[sent..])
            .map_err(|source| Failure::Line {
                line: first_line + sent as u64,
                source,
            })?;
    }
    Ok(())
}

/// When `recv` lets a message leave the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Once stdout's reader has read it, where that can be known (a pipe or a socket); once
    /// written and flushed otherwise (a file, a terminal).
    OnRead,
    /// Once written and flushed, whatever stdout is (`--release-on-write`): lines a reader
    /// left unread in a pipe are lost.
    OnWrite,
}

/// `shmq recv`: writes each message and a `\n` to stdout until `count` messages were received,
/// the queue is closed and drained, or `timeout` passes without a message.
///
/// With [`Release::OnRead`] and stdout a pipe or a socket, messages go out one at a time: each
/// is written, and released only once the reader has read every byte of it; only then is the
/// next one claimed. A reader never has more than one message in its hands (`head -1` reads the
/// pipe in large blocks and throws away what follows the first line, so two messages in the
/// pipe would lose one). Otherwise messages go out in batches, each released once written and
/// flushed.
///
/// If stdout's reader goes away (`shmq recv q | head -1`), returns successfully, whether that
/// shows as a failed write or is noticed while waiting; the message it had not read stays
/// claimed by this process, as if it had crashed, and is given back to the queue, with its
/// delivery count raised, when the handle is dropped (or, had it been killed, by crash
/// recovery).
pub fn recv(
    path: &Path,
    count: Option<u64>,
    timeout: Option<Duration>,
    release: Release,
) -> Result<(), Failure> {
    let queue = Queue::open(path)?;
    let out = BufWriter::with_capacity(IO_BUFFER, io::stdout().lock());
    let count = count.unwrap_or(u64::MAX);
    match (release, Unread::of_stdout()) {
        (Release::OnRead, Some(unread)) => recv_each_once_read(&queue, out, unread, count, timeout),
        _ => recv_batches_once_written(&queue, out, count, timeout),
    }
}

/// Receives up to `count` messages, writing each and releasing it once `unread` says its reader
/// has read all of it; the next is claimed only then.
fn recv_each_once_read(
    queue: &Queue,
    mut out: impl Write,
    unread: Unread,
    count: u64,
    timeout: Option<Duration>,
) -> Result<(), Failure> {
    for _ in 0..count {
        let Some(message) = next_message(queue, timeout)? else {
            return Ok(());
        };
        let read = write_lines(&mut out, std::slice::from_ref(&message))
            .and_then(|()| unread.wait_until_read());
        match read {
            Ok(true) => drop(message), // read: release it
            Ok(false) => return keep_claimed(vec![message], Ok(())),
            Err(e) => return keep_claimed(vec![message], stdout_failure(e)),
        }
    }
    Ok(())
}

/// Receives up to `count` messages in batches of what is ready, releasing each batch once it is
/// written and flushed.
fn recv_batches_once_written(
    queue: &Queue,
    mut out: impl Write,
    count: u64,
    timeout: Option<Duration>,
) -> Result<(), Failure> {
    let mut remaining = count;
    let mut batch: Vec<RecvGuard<'_>> = Vec::with_capacity(RECV_BATCH);
    while remaining > 0 {
        // Wait for one message...
        match next_message(queue, timeout)? {
            Some(message) => batch.push(message),
            None => return Ok(()),
        }
        // ...then take the ones that are ready too.
        let mut failure = None;
        while batch.len() < RECV_BATCH && (batch.len() as u64) < remaining {
            match queue.try_recv_in_place() {
                Ok(message) => batch.push(message),
                Err(Error::Empty | Error::Closed) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Write and flush; only then release.
        if let Err(e) = write_lines(&mut out, &batch) {
            return keep_claimed(batch, stdout_failure(e));
        }
        remaining -= batch.len() as u64;
        batch.clear();
        if let Some(e) = failure {
            return Err(e.into());
        }
    }
    Ok(())
}

/// Leaves `messages` claimed, undelivered, and returns `result`.
///
/// Releasing them would consume messages nobody read. The guards are leaked instead, so the
/// messages stay claimed by this process; the library resolves a dropped handle's leaked claims
/// as crash recovery resolves a dead process's (given back to the queue for another receiver,
/// with the delivery count raised), so the caller returns and lets the queue drop.
fn keep_claimed(messages: Vec<RecvGuard<'_>>, result: Result<(), Failure>) -> Result<(), Failure> {
    messages.into_iter().for_each(std::mem::forget);
    result
}

/// What a failed write to stdout means: success if its reader went away (`EPIPE`), a failure
/// otherwise.
fn stdout_failure(e: io::Error) -> Result<(), Failure> {
    match e.kind() {
        io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(Failure::Stdout(e)),
    }
}

/// Waits for the next message; `None` once the queue is closed and drained, after `timeout`
/// without a message, or when stdout has lost its reader.
///
/// The wait is cut into slices of [`READER_CHECK`]: between them, an idle receiver checks that
/// someone still reads its output, so that `shmq recv q | head -1` ends when `head` does
/// rather than at the next message.
fn next_message(
    queue: &Queue,
    timeout: Option<Duration>,
) -> Result<Option<RecvGuard<'_>>, Failure> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let slice = match deadline {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .min(READER_CHECK),
            None => READER_CHECK,
        };
        match queue.recv_in_place_timeout(slice) {
            Ok(message) => return Ok(Some(message)),
            Err(Error::Closed) => return Ok(None),
            Err(Error::Timeout) => {
                let expired = deadline.is_some_and(|d| Instant::now() >= d);
                if expired || stdout_reader_gone() {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether stdout is a pipe or socket whose reader has gone away (or a terminal that hung up):
/// the next write would fail with `EPIPE`.
fn stdout_reader_gone() -> bool {
    let mut stdout = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0, // POLLERR and POLLHUP are reported whatever is asked for
        revents: 0,
    };
    // SAFETY: `stdout` is one valid, exclusively borrowed `pollfd`, matching `nfds = 1`; poll
    // only writes its `revents`, and a zero timeout never blocks.
    let ready = unsafe { libc::poll(&mut stdout, 1, 0) };
    ready > 0 && stdout.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// A kind of stdout that can say how many of the bytes written to it its reader has not read
/// yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unread {
    /// A pipe: `FIONREAD` counts the bytes in it, from either end. Bytes left in it stay
    /// counted after the reader has gone.
    Pipe,
    /// A socket: `SIOCOUTQ` (which is `TIOCOUTQ`) counts the bytes sent that the peer has not
    /// read yet (Unix-domain) or not acknowledged yet (TCP: its kernel has them, its reader
    /// may not). A peer that closes discards its unread bytes, which then stop counting.
    Socket,
}

impl Unread {
    /// What stdout is, if it is a pipe or a socket that answers the question.
    fn of_stdout() -> Option<Unread> {
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `stat` is valid for writes of one `libc::stat`, which fstat fills on success.
        if unsafe { libc::fstat(libc::STDOUT_FILENO, stat.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: fstat returned 0, so it initialised `stat`.
        let kind = match unsafe { stat.assume_init() }.st_mode & libc::S_IFMT {
            libc::S_IFIFO => Unread::Pipe,
            libc::S_IFSOCK => Unread::Socket,
            _ => return None,
        };
        // A socket type without an output queue (or a kernel without the ioctl) cannot say:
        // it is then written to as a file is.
        kind.bytes().ok().map(|_| kind)
    }

    /// How many bytes written to stdout have not been read yet.
    fn bytes(self) -> io::Result<usize> {
        let request = match self {
            Unread::Pipe => libc::FIONREAD,
            Unread::Socket => libc::TIOCOUTQ,
        };
        let mut unread: libc::c_int = 0;
        // SAFETY: both requests write one `int` through their argument, which points to
        // `unread`, a live and exclusively borrowed `c_int`.
        let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, request, &mut unread) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(unread).unwrap_or(0))
    }

    /// Waits until stdout's reader has read every byte written to it so far: `Ok(true)`; or
    /// until it has gone away: `Ok(false)`.
    ///
    /// Polls the count for [`DRAIN_SPIN`], yielding the CPU between looks (a reader that is
    /// running reads a line within microseconds, and on a busy machine it may be waiting for
    /// this core); then sleeps between looks, from [`FIRST_NAP`] doubling up to [`LAST_NAP`],
    /// so that a slow reader costs a few wake-ups a second and is noticed at most about as
    /// late again as it took (and never more than [`LAST_NAP`] late).
    fn wait_until_read(self) -> io::Result<bool> {
        let started = Instant::now();
        let mut nap = FIRST_NAP;
        loop {
            if self.bytes()? == 0 {
                // A pipe's unread bytes outlive its reader, so zero means read. A socket's
                // are discarded when its peer closes (after the peer is marked closed), so
                // zero means read only if the peer is still there: if not, it may have read
                // the message or not, and a message may be delivered twice but never lost.
                return Ok(self == Unread::Pipe || !stdout_reader_gone());
            }
            if started.elapsed() < DRAIN_SPIN {
                std::thread::yield_now();
                continue;
            }
            if stdout_reader_gone() {
                return Ok(false);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(LAST_NAP);
        }
    }
}

/// Writes each message and a `\n`, then flushes.
fn write_lines(out: &mut impl Write, messages: &[RecvGuard<'_>]) -> io::Result<()> {
    for message in messages {
        out.write_all(message)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, usize>> {
        let mut input = BufReader::with_capacity(4, input); // tiny, to cross buffer refills
        let mut line = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line(&mut input, max, &mut line).unwrap() {
                Line::Read => out.push(Ok(line.clone())),
                Line::TooLong(len) => out.push(Err(len)),
                Line::End => return out,
            }
        }
    }

    #[test]
    fn lines_lose_only_their_newline() {
        assert_eq!(
            lines(b"a\n\nbc\r\nlast", 8),
            [
                Ok(b"a".to_vec()),
                Ok(vec![]),
                Ok(b"bc\r".to_vec()),
                Ok(b"last".to_vec())
            ]
        );
        assert_eq!(lines(b"", 8), []);
        assert_eq!(lines(b"\n", 8), [Ok(vec![])]);
    }

    #[test]
    fn a_line_of_exactly_the_maximum_fits_and_one_more_byte_is_measured() {
        assert_eq!(lines(b"12345678\n", 8), [Ok(b"12345678".to_vec())]);
        assert_eq!(lines(b"123456789\nok\n", 8), [Err(9), Ok(b"ok".to_vec())]);
        assert_eq!(lines(b"0123456789abcdef", 8), [Err(16)]);
    }
}

//! The API's promises, one process: each call's result and what it leaves in the queue.

use shmq::{Error, Options, Queue};
use std::time::{Duration, Instant};

fn queue(cap: u32, max: u32) -> (tempfile::TempDir, Queue) {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(dir.path().join("q"), Options::new(cap, max)).unwrap();
    (dir, q)
}

#[test]
fn messages_come_out_in_order_and_full_pushes_back() {
    let (_d, q) = queue(4, 16);
    for i in 0..4u8 {
        q.try_send(&[i; 3]).unwrap();
    }
    assert!(matches!(q.try_send(b"x"), Err(Error::Full)));
    let mut buf = [0u8; 16];
    for i in 0..4u8 {
        assert_eq!(q.try_recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], &[i; 3]);
    }
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
    // Wraps around many laps.
    for i in 0..1000u32 {
        q.try_send(&i.to_le_bytes()).unwrap();
        assert_eq!(q.try_recv(&mut buf).unwrap(), 4);
        assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), i);
    }
    let s = q.stats();
    assert_eq!((s.sent, s.received, s.len), (1004, 1004, 0));
}

#[test]
fn too_large_and_too_small_lose_nothing() {
    let (_d, q) = queue(4, 8);
    assert!(matches!(
        q.try_send(&[0; 9]),
        Err(Error::TooLarge { len: 9, max: 8 })
    ));
    q.try_send(b"12345678").unwrap();
    let mut small = [0u8; 4];
    assert!(matches!(
        q.try_recv(&mut small),
        Err(Error::BufferTooSmall { needed: 8 })
    ));
    let mut buf = [0u8; 8];
    assert_eq!(q.try_recv(&mut buf).unwrap(), 8);
    assert_eq!(&buf, b"12345678");
    assert_eq!(q.stats().len, 0);
}

#[test]
fn guards_write_and_read_in_place_and_cancel_is_skipped() {
    let (_d, q) = queue(2, 8);
    let mut g = q.try_reserve().unwrap();
    assert_eq!(g.len(), 8);
    g[..2].copy_from_slice(b"hi");
    g.commit(2).unwrap();
    drop(q.try_reserve().unwrap()); // cancelled
    q.try_send(b"after").unwrap_err(); // the cancelled slot is still in the ring: full
    {
        let m = q.try_recv_in_place().unwrap();
        assert_eq!(&*m, b"hi");
        assert_eq!(m.deliveries(), 1);
    }
    q.try_send(b"after").unwrap();
    assert_eq!(&*q.try_recv_in_place().unwrap(), b"after");
    assert_eq!(q.stats().cancelled_sends, 1);
    assert!(matches!(q.try_recv_in_place(), Err(Error::Empty)));
}

#[test]
fn batches_take_what_fits() {
    let (_d, q) = queue(4, 8);
    let msgs: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i]).collect();
    assert_eq!(q.try_send_batch(&msgs).unwrap(), 4);
    assert!(matches!(q.try_send_batch(&msgs), Err(Error::Full)));
    let mut got = vec![];
    assert_eq!(q.try_recv_batch(3, |m| got.push(m[0])).unwrap(), 3);
    assert_eq!(q.try_recv_batch(3, |m| got.push(m[0])).unwrap(), 1);
    assert_eq!(got, [0, 1, 2, 3]);
    assert!(matches!(
        q.try_send_batch(&[vec![0u8; 9]]),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn close_drains_then_reports_closed() {
    let (_d, q) = queue(4, 8);
    q.try_send(b"a").unwrap();
    assert!(q.close());
    assert!(!q.close());
    assert!(matches!(q.try_send(b"b"), Err(Error::Closed)));
    assert!(matches!(q.send(b"b"), Err(Error::Closed)));
    let mut buf = [0u8; 8];
    assert_eq!(q.recv(&mut buf).unwrap(), 1);
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Closed)));
    assert!(matches!(q.recv(&mut buf), Err(Error::Closed)));
    assert!(q.stats().closed);
}

#[test]
fn timeouts_fire() {
    let (_d, q) = queue(2, 8);
    let mut buf = [0u8; 8];
    let t = Instant::now();
    assert!(matches!(
        q.recv_timeout(&mut buf, Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(50));
    q.try_send(b"1").unwrap();
    q.try_send(b"2").unwrap();
    let t = Instant::now();
    assert!(matches!(
        q.send_timeout(b"3", Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(50));
}

#[test]
fn threads_share_one_handle() {
    let (_d, q) = queue(8, 8);
    let q = std::sync::Arc::new(q);
    let n = 20_000u64;
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    q.send(&(p * n + i).to_le_bytes()).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = vec![];
                let mut buf = [0u8; 8];
                while q.recv(&mut buf).is_ok() {
                    got.push(u64::from_le_bytes(buf));
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, (0..2 * n).collect::<Vec<_>>());
}

// SPDX-License-Identifier: MIT OR Apache-2.0
//
// shmq.hpp: a small header-only C++17 wrapper over shmq.h. Link with -lshmq as for C.
//
//   #include <shmq.hpp>
//   #include <cstdio>
//   #include <cstring>
//
//   int main() {
//       auto q = shmqpp::queue::open_or_create("/dev/shm/jobs", 1024, 256);  // throws shmqpp::error
//       if (q.send("resize 42") != shmqpp::status::ok) return 1;           // waits for room
//       char buf[256];
//       std::size_t n = 0;
//       if (q.recv(buf, sizeof buf, n, std::chrono::seconds(1)) == shmqpp::status::ok)
//           std::printf("%.*s\n", static_cast<int>(n), buf);
//       if (auto slot = q.try_reserve()) {       // zero copy: write in the slot, then commit
//           std::memcpy(slot->data(), "abc", 3);
//           (void)slot->commit(3);
//       }
//       if (auto msg = q.try_recv_in_place())    // zero copy: read in the slot; freed when
//           std::printf("%.*s\n", static_cast<int>(msg->size()), msg->chars());  // msg goes
//   }                                            // (the handle is detached when q goes)
//
// Error handling: opening throws shmqpp::error (there is no handle to return). Every other call
// returns a shmqpp::status ([[nodiscard]]), because FULL, EMPTY, TIMEOUT and CLOSED are everyday
// outcomes of a queue, not exceptional ones; shmqpp::check(status) turns one into an exception
// where that is more convenient. Nothing in this header allocates except the error message.
//
// Threads and fork follow shmq.h: a queue may be used by many threads at once; a reservation or a
// message by one at a time; a child after fork() opens its own queue and must not touch (not even
// destroy) objects inherited from the parent -- let them leak, or _exit/exec.
#ifndef SHMQ_HPP
#define SHMQ_HPP

#include "shmq.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

// The namespace is not `shmq`: in C++ that name is already the C handle type (shmq.h).
namespace shmqpp {

/// The status codes of shmq.h as a scoped enum.
enum class status : int {
    ok = SHMQ_OK,
    full = SHMQ_FULL,
    empty = SHMQ_EMPTY,
    timeout = SHMQ_TIMEOUT,
    closed = SHMQ_CLOSED,
    too_large = SHMQ_TOO_LARGE,
    buffer_too_small = SHMQ_BUFFER_TOO_SMALL,
    invalid_argument = SHMQ_INVALID_ARGUMENT,
    not_found = SHMQ_NOT_FOUND,
    already_exists = SHMQ_ALREADY_EXISTS,
    permission_denied = SHMQ_PERMISSION_DENIED,
    corrupt = SHMQ_CORRUPT,
    incompatible = SHMQ_INCOMPATIBLE,
    io = SHMQ_IO,
    internal = SHMQ_INTERNAL,
    too_many_handles = SHMQ_TOO_MANY_HANDLES,
};

/// The static description of a status ("SHMQ_FULL: the queue is full").
inline const char *to_string(status s) noexcept { return shmq_strerror(static_cast<int>(s)); }

/// Thrown by the opening functions and by check().
class error : public std::runtime_error {
public:
    error(status s, const std::string &what)
        : std::runtime_error(what + ": " + to_string(s)), status_(s) {}
    status code() const noexcept { return status_; }

private:
    status status_;
};

/// Throws shmqpp::error unless `s` is status::ok.
inline void check(status s, const char *what = "shmq") {
    if (s != status::ok) throw error(s, what);
}

/// A timeout: negative waits forever (the default), zero does not wait.
using timeout = std::chrono::nanoseconds;
inline constexpr timeout forever{-1};

namespace detail {
inline status st(int rc) noexcept { return static_cast<status>(rc); }
inline std::int64_t ns(timeout t) noexcept { return static_cast<std::int64_t>(t.count()); }
inline void opened(int rc, const char *call, const std::string &path) {
    if (rc != SHMQ_OK) throw error(st(rc), std::string(call) + " " + path);
}
}  // namespace detail

/// What a queue does with the message of a consumer that dies holding it (shmq.h's
/// enum shmq_on_consumer_death).
enum class on_consumer_death : std::uint32_t {
    redeliver = SHMQ_ON_CONSUMER_DEATH_REDELIVER,  ///< give it back, count raised (default)
    drop = SHMQ_ON_CONSUMER_DEATH_DROP,            ///< drop it (at-most-once)
};

/// Creation options (shmq.h's struct shmq_options) with chainable setters:
///   shmqpp::queue::create(path, shmqpp::options(1024, 256).max_deliveries(5));
class options {
public:
    options(std::uint32_t capacity, std::uint32_t max_message_size) noexcept : o_{} {
        o_.capacity = capacity;
        o_.max_message_size = max_message_size;
    }
    /// Permission bits of a new file (0: the default 0600).
    options &mode(std::uint32_t bits) noexcept {
        o_.mode = bits;
        return *this;
    }
    options &on_consumer_death(shmqpp::on_consumer_death p) noexcept {
        o_.on_consumer_death = static_cast<std::uint32_t>(p);
        return *this;
    }
    /// With redeliver: drop a message whose consumer dies on this delivery (0: unlimited).
    options &max_deliveries(std::uint32_t n) noexcept {
        o_.max_deliveries = n;
        return *this;
    }
    /// Permit a mode with bits for "other" users (see shmq.h's struct shmq_options).
    options &allow_other_access(bool allow = true) noexcept {
        o_.allow_other_access = allow ? 1u : 0u;
        return *this;
    }
    const struct shmq_options &c() const noexcept { return o_; }

private:
    struct shmq_options o_;
};

/// A reserved slot: write up to capacity() bytes at data(), then commit(len). Move-only;
/// destroying it without committing cancels the send.
class reservation {
public:
    /// An empty reservation, to be filled by queue::reserve().
    reservation() noexcept : r_(nullptr), data_(nullptr), capacity_(0) {}
    reservation(reservation &&o) noexcept
        : r_(std::exchange(o.r_, nullptr)), data_(o.data_), capacity_(o.capacity_) {}
    reservation &operator=(reservation &&o) noexcept {
        if (this != &o) {
            shmq_cancel(r_);
            r_ = std::exchange(o.r_, nullptr);
            data_ = o.data_;
            capacity_ = o.capacity_;
        }
        return *this;
    }
    reservation(const reservation &) = delete;
    reservation &operator=(const reservation &) = delete;
    ~reservation() { shmq_cancel(r_); }

    /// Whether this holds a slot (not empty, committed or moved from).
    explicit operator bool() const noexcept { return r_ != nullptr; }
    void *data() const noexcept { return data_; }
    std::size_t capacity() const noexcept { return capacity_; }

    /// Publishes the first `len` bytes; the reservation is spent whatever the result.
    [[nodiscard]] status commit(std::size_t len) noexcept {
        return detail::st(shmq_commit(std::exchange(r_, nullptr), len));
    }

private:
    friend class queue;
    reservation(shmq_reservation *r, void *data, std::size_t capacity) noexcept
        : r_(r), data_(data), capacity_(capacity) {}
    shmq_reservation *r_;
    void *data_;
    std::size_t capacity_;
};

/// A message received in place: valid until destroyed, which frees its slot. Move-only.
class message {
public:
    /// An empty message, to be filled by queue::recv_in_place().
    message() noexcept : m_(nullptr), data_(nullptr), size_(0) {}
    message(message &&o) noexcept
        : m_(std::exchange(o.m_, nullptr)), data_(o.data_), size_(o.size_) {}
    message &operator=(message &&o) noexcept {
        if (this != &o) {
            shmq_release(m_);
            m_ = std::exchange(o.m_, nullptr);
            data_ = o.data_;
            size_ = o.size_;
        }
        return *this;
    }
    message(const message &) = delete;
    message &operator=(const message &) = delete;
    ~message() { shmq_release(m_); }

    /// Whether this holds a message (not empty or moved from).
    explicit operator bool() const noexcept { return m_ != nullptr; }
    const void *data() const noexcept { return data_; }
    const char *chars() const noexcept { return static_cast<const char *>(data_); }
    std::size_t size() const noexcept { return size_; }
    std::string_view view() const noexcept { return {chars(), size_}; }
    /// 1 on the first delivery of this message; more if consumers died holding it.
    std::uint32_t deliveries() const noexcept { return shmq_message_deliveries(m_); }

private:
    friend class queue;
    message(shmq_message *m, const void *data, std::size_t size) noexcept
        : m_(m), data_(data), size_(size) {}
    shmq_message *m_;
    const void *data_;
    std::size_t size_;
};

/// An open queue (RAII over `shmq *`): move-only, detached on destruction, thread-safe.
class queue {
public:
    static queue create(const std::string &path, std::uint32_t capacity,
                        std::uint32_t max_message_size) {
        shmq *q = nullptr;
        detail::opened(shmq_create(path.c_str(), capacity, max_message_size, &q), "shmq_create",
                       path);
        return queue(q);
    }
    /// Creates a queue with every option (see shmqpp::options).
    static queue create(const std::string &path, const options &opts) {
        shmq *q = nullptr;
        detail::opened(shmq_create_ex(path.c_str(), &opts.c(), &q), "shmq_create_ex", path);
        return queue(q);
    }
    static queue open(const std::string &path) {
        shmq *q = nullptr;
        detail::opened(shmq_open(path.c_str(), &q), "shmq_open", path);
        return queue(q);
    }
    static queue open_or_create(const std::string &path, std::uint32_t capacity,
                                std::uint32_t max_message_size) {
        shmq *q = nullptr;
        detail::opened(shmq_open_or_create(path.c_str(), capacity, max_message_size, &q),
                       "shmq_open_or_create", path);
        return queue(q);
    }
    /// Opens the queue, creating it with `opts` if it does not exist.
    static queue open_or_create(const std::string &path, const options &opts) {
        shmq *q = nullptr;
        detail::opened(shmq_open_or_create_ex(path.c_str(), &opts.c(), &q),
                       "shmq_open_or_create_ex", path);
        return queue(q);
    }
    /// Removes the queue file; open handles keep working.
    [[nodiscard]] static status unlink(const std::string &path) noexcept {
        return detail::st(shmq_unlink(path.c_str()));
    }

    queue(queue &&o) noexcept : q_(std::exchange(o.q_, nullptr)) {}
    queue &operator=(queue &&o) noexcept {
        if (this != &o) {
            shmq_detach(q_);
            q_ = std::exchange(o.q_, nullptr);
        }
        return *this;
    }
    queue(const queue &) = delete;
    queue &operator=(const queue &) = delete;
    ~queue() { shmq_detach(q_); }

    /// The C handle, for calls this wrapper does not cover.
    shmq *handle() const noexcept { return q_; }
    std::uint32_t capacity() const noexcept { return shmq_capacity(q_); }
    std::uint32_t max_message_size() const noexcept { return shmq_max_message_size(q_); }
    bool is_closed() const noexcept { return shmq_is_closed(q_) != 0; }
    /// Closes the queue for every process (receivers drain, then get status::closed).
    status close() noexcept { return detail::st(shmq_close(q_)); }

    [[nodiscard]] status try_send(const void *data, std::size_t len) noexcept {
        return detail::st(shmq_try_send(q_, data, len));
    }
    [[nodiscard]] status try_send(std::string_view msg) noexcept {
        return try_send(msg.data(), msg.size());
    }
    [[nodiscard]] status send(const void *data, std::size_t len, timeout t = forever) noexcept {
        return detail::st(shmq_send(q_, data, len, detail::ns(t)));
    }
    [[nodiscard]] status send(std::string_view msg, timeout t = forever) noexcept {
        return send(msg.data(), msg.size(), t);
    }

    /// Receives into `buf`; `len` is set on ok (the length) and on buffer_too_small (the size
    /// needed; the message stays queued).
    [[nodiscard]] status try_recv(void *buf, std::size_t cap, std::size_t &len) noexcept {
        return detail::st(shmq_try_recv(q_, buf, cap, &len));
    }
    [[nodiscard]] status recv(void *buf, std::size_t cap, std::size_t &len,
                              timeout t = forever) noexcept {
        return detail::st(shmq_recv(q_, buf, cap, &len, detail::ns(t)));
    }

    /// As recv(), and on ok also sets `deliveries`: 1, or more if consumers died holding the
    /// message and it was redelivered. A zero timeout makes it a try.
    [[nodiscard]] status recv_meta(void *buf, std::size_t cap, std::size_t &len,
                                   std::uint32_t &deliveries, timeout t = forever) noexcept {
        return detail::st(shmq_recv_meta(q_, buf, cap, &len, &deliveries, detail::ns(t)));
    }

    /// Reserves a slot to write in place; empty if there is no room now (or on another error:
    /// use reserve() to learn which).
    std::optional<reservation> try_reserve() noexcept {
        reservation r;
        if (reserve(r, timeout::zero()) != status::ok) return std::nullopt;
        return r;
    }
    /// Reserves a slot into `out`, waiting as `t` allows.
    [[nodiscard]] status reserve(reservation &out, timeout t = forever) noexcept {
        shmq_reservation *r = nullptr;
        void *data = nullptr;
        std::size_t cap = 0;
        status s = detail::st(shmq_reserve(q_, &r, &data, &cap, detail::ns(t)));
        if (s == status::ok) out = reservation(r, data, cap);
        return s;
    }

    /// Receives the next message in place; empty if none is ready (or on another error: use
    /// recv_in_place() to learn which).
    std::optional<message> try_recv_in_place() noexcept {
        message m;
        if (recv_in_place(m, timeout::zero()) != status::ok) return std::nullopt;
        return m;
    }
    /// Receives the next message in place into `out`, waiting as `t` allows.
    [[nodiscard]] status recv_in_place(message &out, timeout t = forever) noexcept {
        shmq_message *m = nullptr;
        const void *data = nullptr;
        std::size_t len = 0;
        status s = detail::st(shmq_recv_in_place(q_, &m, &data, &len, detail::ns(t)));
        if (s == status::ok) out = message(m, data, len);
        return s;
    }

    /// Receives up to `max` ready messages, calling `f(std::string_view)` on each in place;
    /// `received` is how many. `f` must not throw.
    template <class F>
    [[nodiscard]] status recv_batch(std::size_t max, F f, std::size_t &received,
                                    timeout t = forever) noexcept {
        auto tramp = [](void *ctx, const void *data, std::size_t len) {
            (*static_cast<F *>(ctx))(std::string_view(static_cast<const char *>(data), len));
        };
        return detail::st(shmq_recv_batch(q_, max, tramp, &f, &received, detail::ns(t)));
    }

    /// A snapshot of the queue's counters.
    struct shmq_stats stats() const {
        struct shmq_stats s {};
        check(detail::st(::shmq_stats(q_, &s)), "shmq_stats");
        return s;
    }

private:
    explicit queue(shmq *q) noexcept : q_(q) {}
    shmq *q_;
};

/// A topic (fanout; see shmq.h): every published message goes to one queue per subscription.
/// Move-only; the handle is detached when it goes.
///   auto t = shmqpp::topic::create("/dev/shm/orders", 256);
///   t.subscribe("/dev/shm/billing", shmqpp::subscription(1024, 256));
///   (void)t.publish("order 42");
class topic {
public:
    static topic create(const std::string &path, std::uint32_t max_message_size) {
        shmq_topic *t = nullptr;
        detail::opened(shmq_topic_create(path.c_str(), max_message_size, &t), "shmq_topic_create",
                       path);
        return topic(t);
    }
    static topic open(const std::string &path) {
        shmq_topic *t = nullptr;
        detail::opened(shmq_topic_open(path.c_str(), &t), "shmq_topic_open", path);
        return topic(t);
    }
    topic(topic &&o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
    topic &operator=(topic &&o) noexcept {
        if (this != &o) {
            shmq_topic_detach(t_);
            t_ = std::exchange(o.t_, nullptr);
        }
        return *this;
    }
    topic(const topic &) = delete;
    topic &operator=(const topic &) = delete;
    ~topic() { shmq_topic_detach(t_); }

    /// Subscribes the queue at `queue_path` (see shmqpp::subscription).
    [[nodiscard]] status subscribe(const std::string &queue_path,
                                   const struct shmq_subscription_options &opts) noexcept {
        return detail::st(shmq_topic_subscribe(t_, queue_path.c_str(), &opts));
    }
    [[nodiscard]] status unsubscribe(const std::string &queue_path) noexcept {
        return detail::st(shmq_topic_unsubscribe(t_, queue_path.c_str()));
    }
    /// All or nothing across the block subscriptions: full means it went nowhere.
    [[nodiscard]] status try_publish(std::string_view msg) noexcept {
        return detail::st(shmq_topic_try_publish(t_, msg.data(), msg.size()));
    }
    /// Waits for room as `t` says (forever by default; a finite wait is all or nothing).
    [[nodiscard]] status publish(std::string_view msg, timeout t = forever) noexcept {
        return detail::st(shmq_topic_publish(t_, msg.data(), msg.size(), detail::ns(t)));
    }
    shmq_topic *handle() const noexcept { return t_; }

private:
    explicit topic(shmq_topic *t) noexcept : t_(t) {}
    shmq_topic *t_;
};

/// Subscription options (shmq.h's struct shmq_subscription_options) with chainable setters;
/// converts to the C struct. The prefix is borrowed: its bytes must outlive the subscribe call.
class subscription {
public:
    subscription(std::uint32_t capacity, std::uint32_t max_message_size) noexcept : o_{} {
        o_.capacity = capacity;
        o_.max_message_size = max_message_size;
    }
    subscription &drop_when_full() noexcept {
        o_.when_full = SHMQ_WHEN_FULL_DROP;
        return *this;
    }
    subscription &prefix(std::string_view p) noexcept {
        prefix_ = p;
        return *this;
    }
    operator struct shmq_subscription_options() const noexcept {
        struct shmq_subscription_options o = o_;
        o.prefix = prefix_.data();
        o.prefix_len = prefix_.size();
        return o;
    }

private:
    struct shmq_subscription_options o_;
    std::string_view prefix_;
};

}  // namespace shmqpp

#endif  // SHMQ_HPP

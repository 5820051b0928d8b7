// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The C++ wrapper's promises: opening throws shmqpp::error with the status, everything else
// returns a status, reservations cancel and messages release when destroyed, moves transfer
// ownership, and the queue detaches when destroyed. Usage: wrapper DIR. Exits 0 if all held.
#include "shmq.hpp"

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

static int failures;
#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) {                                                            \
            std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                           \
        }                                                                         \
    } while (0)

using shmqpp::status;

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const std::string path = std::string(argv[1]) + "/cpp";

    try {
        shmqpp::queue::open(path);
        CHECK(false);
    } catch (const shmqpp::error &e) {
        CHECK(e.code() == status::not_found);
        CHECK(std::strstr(e.what(), "SHMQ_NOT_FOUND") != nullptr);
    }
    {
        auto q = shmqpp::queue::create(path, 4, 32);
        CHECK(q.capacity() == 4 && q.max_message_size() == 32);
        try {
            shmqpp::queue::create(path, 4, 32);
            CHECK(false);
        } catch (const shmqpp::error &e) {
            CHECK(e.code() == status::already_exists);
        }

        CHECK(q.try_send("hello") == status::ok);
        CHECK(q.send("world", std::chrono::milliseconds(1)) == status::ok);
        char buf[32];
        std::size_t n = 0;
        CHECK(q.try_recv(buf, 2, n) == status::buffer_too_small && n == 5);
        CHECK(q.recv(buf, sizeof buf, n) == status::ok && std::string(buf, n) == "hello");

        {  // a reservation destroyed uncommitted is cancelled
            auto slot = q.try_reserve();
            CHECK(slot.has_value() && *slot && slot->capacity() == 32);
        }
        CHECK(q.stats().cancelled_sends == 1);

        shmqpp::reservation r;
        CHECK(!r);
        CHECK(q.reserve(r, shmqpp::timeout::zero()) == status::ok && r);
        std::memcpy(r.data(), "zero-copy", 9);
        shmqpp::reservation moved = std::move(r);
        CHECK(!r && moved);
        CHECK(moved.commit(9) == status::ok && !moved);

        auto first = q.try_recv_in_place();
        CHECK(first && first->view() == "world" && first->deliveries() == 1);
        shmqpp::message second;
        CHECK(q.recv_in_place(second, std::chrono::milliseconds(100)) == status::ok);
        CHECK(second.view() == "zero-copy");
        first.reset();  // released
        second = shmqpp::message();  // released by the move assignment
        CHECK(q.stats().len == 0);
        CHECK(!q.try_recv_in_place());
        CHECK(q.recv_in_place(second, std::chrono::milliseconds(1)) == status::timeout);

        for (const char *m : {"a", "b", "c"}) CHECK(q.try_send(m) == status::ok);
        std::vector<std::string> got;
        std::size_t received = 0;
        CHECK(q.recv_batch(8, [&](std::string_view m) { got.emplace_back(m); }, received) ==
              status::ok);
        CHECK(received == 3 && got == (std::vector<std::string>{"a", "b", "c"}));

        auto other = shmqpp::queue::open(path);
        CHECK(q.stats().participants == 2);
        shmqpp::queue moved_q = std::move(other);
        CHECK(moved_q.handle() != nullptr && other.handle() == nullptr);
        CHECK(moved_q.close() == status::ok && q.is_closed());
        CHECK(q.try_send("x") == status::closed);
        CHECK(q.recv(buf, sizeof buf, n) == status::closed);
        try {
            shmqpp::check(q.try_send("x"), "send after close");
            CHECK(false);
        } catch (const shmqpp::error &e) {
            CHECK(e.code() == status::closed);
        }
    }  // both handles detached here
    CHECK(shmqpp::queue::unlink(path) == status::ok);
    CHECK(shmqpp::queue::unlink(path) == status::not_found);

    {  // creation options and the receive with its delivery count
        const std::string opt_path = std::string(argv[1]) + "/cpp-options";
        auto q = shmqpp::queue::create(
            opt_path, shmqpp::options(8, 16).on_consumer_death(shmqpp::on_consumer_death::drop));
        struct shmq_stats s = q.stats();
        CHECK(s.capacity == 8 && s.on_consumer_death == SHMQ_ON_CONSUMER_DEATH_DROP);
        try {
            auto bad = shmqpp::options(8, 16)
                           .on_consumer_death(shmqpp::on_consumer_death::drop)
                           .max_deliveries(3);  // a limit means nothing when dropping
            shmqpp::queue::create(opt_path + "-bad", bad);
            CHECK(false);
        } catch (const shmqpp::error &e) {
            CHECK(e.code() == status::invalid_argument);
        }
        auto limited = shmqpp::queue::open_or_create(opt_path + "-limited",
                                                     shmqpp::options(4, 16).max_deliveries(3));
        CHECK(limited.stats().max_deliveries == 3);
        CHECK(limited.try_send("meta") == status::ok);
        char buf[16];
        std::size_t n = 0;
        std::uint32_t deliveries = 0;
        CHECK(limited.recv_meta(buf, sizeof buf, n, deliveries) == status::ok);
        CHECK(std::string(buf, n) == "meta" && deliveries == 1);
        CHECK(limited.recv_meta(buf, sizeof buf, n, deliveries, shmqpp::timeout::zero()) ==
              status::empty);
    }
    CHECK(std::strncmp(shmqpp::to_string(status::full), "SHMQ_FULL", 9) == 0);
    std::printf("wrapper: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}

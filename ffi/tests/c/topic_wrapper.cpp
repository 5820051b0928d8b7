// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The C++ topic wrapper: opening throws shmqpp::error with the status, subscribe and publish
// return statuses, a prefix subscription gets only its messages, the handle detaches when
// destroyed. Usage: topic_wrapper DIR. Exits 0 if all held.
#include "shmq.hpp"

#include <cstdio>
#include <cstring>
#include <string>

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
    const std::string dir = argv[1];
    try {
        shmqpp::topic::open(dir + "/missing");
        CHECK(false);
    } catch (const shmqpp::error &e) {
        CHECK(e.code() == status::not_found);
    }
    {
        auto t = shmqpp::topic::create(dir + "/orders", 32);
        CHECK(t.subscribe(dir + "/all", shmqpp::subscription(8, 32)) == status::ok);
        CHECK(t.subscribe(dir + "/books", shmqpp::subscription(8, 32).prefix("book")) ==
              status::ok);
        CHECK(t.subscribe(dir + "/tiny", shmqpp::subscription(8, 8)) == status::invalid_argument);
        CHECK(t.publish("book 1") == status::ok);
        CHECK(t.try_publish("pen 2") == status::ok);
        CHECK(t.publish("book 3", std::chrono::milliseconds(10)) == status::ok);
        shmqpp::topic moved = std::move(t);
        CHECK(moved.unsubscribe(dir + "/all") == status::ok);
        CHECK(moved.publish("book 4") == status::ok);
    }
    auto all = shmqpp::queue::open(dir + "/all");
    auto books = shmqpp::queue::open(dir + "/books");
    char buf[32];
    std::size_t n = 0;
    std::string got;
    while (all.recv(buf, sizeof buf, n, shmqpp::timeout{0}) == status::ok) got += std::string(buf, n) + ";";
    CHECK(got == "book 1;pen 2;book 3;");
    got.clear();
    while (books.recv(buf, sizeof buf, n, shmqpp::timeout{0}) == status::ok) got += std::string(buf, n) + ";";
    CHECK(got == "book 1;book 3;book 4;");
    std::printf("topic_wrapper: %d failures\n", failures);
    return failures != 0;
}

// SPDX-License-Identifier: MIT OR Apache-2.0
//
// pingpong: round-trip latency between two processes over two queues, with the C++ wrapper
// (shmq.hpp). The parent creates the queues and forks; the child opens its own handles (a child
// must not use, or even destroy, its parent's) and echoes every ping back as a pong, reading it
// in place, until the parent closes the ping queue.
//
// Build:  c++ -std=c++17 examples/cpp/pingpong.cpp $(pkg-config --cflags --libs shmq) -o pingpong
// Run:    ./pingpong [rounds] [/dev/shm/path-prefix]
#include <shmq.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr auto kTimeout = std::chrono::seconds(5);  // every wait is bounded

// The child's whole life: its own handles; echo until the ping queue is closed.
int echo(const std::string &ping_path, const std::string &pong_path) {
    try {
        auto ping = shmqpp::queue::open(ping_path);
        auto pong = shmqpp::queue::open(pong_path);
        for (;;) {
            shmqpp::message msg;
            shmqpp::status s = ping.recv_in_place(msg, kTimeout);
            if (s == shmqpp::status::closed) return 0;
            shmqpp::check(s, "child: receive ping");
            shmqpp::check(pong.send(msg.data(), msg.size(), kTimeout), "child: send pong");
        }  // `msg` is released here, freeing its slot
    } catch (const shmqpp::error &e) {
        std::fprintf(stderr, "pingpong: %s\n", e.what());
        return 1;
    }
}

// The parent: `rounds` pings, each answered before the next; returns the exit code.
int ping_pong(shmqpp::queue &ping, shmqpp::queue &pong, long rounds) {
    auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(rounds); i++) {
        shmqpp::check(ping.send(&i, sizeof i, kTimeout), "send ping");
        std::uint64_t echoed = 0;
        std::size_t len = 0;
        shmqpp::check(pong.recv(&echoed, sizeof echoed, len, kTimeout), "receive pong");
        if (len != sizeof echoed || echoed != i) {
            std::fprintf(stderr, "pingpong: round %llu came back as %llu\n",
                         static_cast<unsigned long long>(i),
                         static_cast<unsigned long long>(echoed));
            return 1;
        }
    }
    std::chrono::duration<double, std::micro> took = std::chrono::steady_clock::now() - start;
    std::printf("pingpong: %ld round trips, %.2f us each\n", rounds,
                rounds > 0 ? took.count() / static_cast<double>(rounds) : 0.0);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    long rounds = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 10000;
    std::string prefix = argc > 2 ? argv[2] : "/dev/shm/shmq-pingpong-" + std::to_string(getpid());
    const std::string ping_path = prefix + ".ping", pong_path = prefix + ".pong";
    int rc = 1;
    try {
        auto ping = shmqpp::queue::create(ping_path, 64, 64);
        auto pong = shmqpp::queue::create(pong_path, 64, 64);
        pid_t child = fork();
        if (child < 0) {
            std::perror("fork");
        } else if (child == 0) {
            // _exit: the inherited `ping` and `pong` must not be destroyed in the child.
            _exit(echo(ping_path, pong_path));
        } else {
            try {
                rc = ping_pong(ping, pong, rounds);
            } catch (const shmqpp::error &e) {
                std::fprintf(stderr, "pingpong: %s\n", e.what());
            }
            (void)ping.close();  // the child drains, sees `closed` and exits
            int status = 0;
            if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0) {
                std::fprintf(stderr, "pingpong: the echo process failed\n");
                rc = 1;
            }
        }
    } catch (const shmqpp::error &e) {
        std::fprintf(stderr, "pingpong: %s\n", e.what());
    }
    (void)shmqpp::queue::unlink(ping_path);
    (void)shmqpp::queue::unlink(pong_path);
    return rc;
}

// Forked children that a test talks to through pipes, and stops, continues or kills: what
// production does to a lock holder. No Catch2 in a child: it reports through its channel and
// ends with _exit.
#pragma once

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace test_support {

using steady = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Forked children that talk to the test through pipes.

// The child's end: lines to the parent, lines from it (blocking). No Catch2 in a child.
struct child_channel {
  int in = -1;   // what the parent sends
  int out = -1;  // what the parent receives

  void say(const std::string& line) const {
    const std::string s = line + "\n";
    std::size_t off = 0;
    while (off < s.size()) {
      const ssize_t w = ::write(out, s.data() + off, s.size() - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return;
      off += static_cast<std::size_t>(w);
    }
  }
  // The next line from the parent ("" when the parent closed its end).
  std::string hear() const {
    std::string line;
    char ch = 0;
    for (;;) {
      const ssize_t n = ::read(in, &ch, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || ch == '\n') return line;
      line += ch;
    }
  }
};

// A forked child running `body(channel)`; its exit code is what body returns (an exception is
// reported as a line and exit code 91). Killed and reaped when destroyed, if still running.
class child_process {
 public:
  template <class Body>
  explicit child_process(Body&& body) {
    int up[2];
    int down[2];
    if (::pipe(up) != 0) throw std::runtime_error("pipe failed");
    if (::pipe(down) != 0) {
      ::close(up[0]);
      ::close(up[1]);
      throw std::runtime_error("pipe failed");
    }
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::close(up[0]);
      ::close(down[1]);
      const child_channel ch{down[0], up[1]};
      int code = 90;
      try {
        code = body(ch);
      } catch (const std::exception& e) {
        ch.say(std::string("exception: ") + e.what());
        code = 91;
      } catch (...) {
        ch.say("exception: unknown");
        code = 92;
      }
      ::_exit(code);
    }
    ::close(up[1]);
    ::close(down[0]);
    from_ = up[0];
    to_ = down[1];
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process() {
    kill();
    ::close(from_);
    ::close(to_);
  }

  pid_t pid() const { return pid_; }

  // Sends one line to the child (a SIGPIPE from a dead child is swallowed, not fatal).
  void send(const std::string& line) {
    sigset_t pipe_set;
    sigset_t old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    const std::string s = line + "\n";
    std::size_t off = 0;
    bool broken = false;
    while (off < s.size()) {
      const ssize_t w = ::write(to_, s.data() + off, s.size() - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        broken = true;
        break;
      }
      off += static_cast<std::size_t>(w);
    }
    if (broken) {
      const timespec zero{0, 0};
      ::sigtimedwait(&pipe_set, nullptr, &zero);
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  // The child's next line; "(timeout)" when none came within `limit`, "(eof)" when the child
  // closed its end (exited) first.
  std::string receive(std::chrono::milliseconds limit) {
    const auto deadline = steady::now() + limit;
    for (;;) {
      const auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      if (left.count() <= 0) return "(timeout)";
      pollfd p{from_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(from_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return "(eof)";
      buffer_.append(buf, static_cast<std::size_t>(n));
    }
  }

  // Waits at most `limit` for the child to exit: its exit code, 128 + the signal that ended it,
  // or -2 when it had to be killed.
  int wait(std::chrono::milliseconds limit) {
    if (reaped_) return status_code_;
    const auto deadline = steady::now() + limit;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        status_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return status_code_;
      }
      if (steady::now() >= deadline) {
        kill();
        status_code_ = -2;
        return -2;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // SIGSTOP, and waits until the kernel reports the child stopped (every thread of it).
  bool stop() {
    if (::kill(pid_, SIGSTOP) != 0) return false;
    int status = 0;
    return ::waitpid(pid_, &status, WUNTRACED) == pid_ && WIFSTOPPED(status);
  }
  void resume() { ::kill(pid_, SIGCONT); }

  // SIGKILL and reap (nothing when it was reaped already).
  void kill() {
    if (reaped_ || pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    status_code_ = 128 + SIGKILL;
  }

 private:
  pid_t pid_ = -1;
  int from_ = -1;
  int to_ = -1;
  std::string buffer_;
  bool reaped_ = false;
  int status_code_ = -1;
};

// ---------------------------------------------------------------------------------------------
// Plain forked children (fork, then _exit), for the stress tests.

// How long a stress run lasts (REDIS_TASKS_STRESS_SECONDS, default 10 as issue 14 asks).
inline int stress_seconds() {
  const char* v = std::getenv("REDIS_TASKS_STRESS_SECONDS");
  const int s = v != nullptr ? std::atoi(v) : 10;
  return s > 0 ? s : 10;
}

// Waits for the child `pid` at most `limit` (then kills it); its exit code, or -1 when a signal
// ended it, or -2 when it had to be killed (-3 when waitpid failed).
inline int wait_child(pid_t pid, std::chrono::seconds limit) {
  using namespace std::chrono_literals;
  const auto deadline = steady::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (r < 0 && errno != EINTR) return -3;
    if (steady::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -2;
    }
    std::this_thread::sleep_for(5ms);
  }
}

// In a child: dies with the test process, so that a failed test leaves no worker behind.
inline void die_with_parent(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(99);
}

// An object in anonymous shared memory: forked children update it, the parent reads it.
template <class T>
class shared_block {
 public:
  shared_block() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    ptr_ = new (p) T();
  }
  shared_block(const shared_block&) = delete;
  shared_block& operator=(const shared_block&) = delete;
  ~shared_block() {
    ptr_->~T();
    ::munmap(ptr_, sizeof(T));
  }
  T* operator->() const { return ptr_; }
  T& operator*() const { return *ptr_; }

 private:
  T* ptr_ = nullptr;
};

}  // namespace test_support

// Blocking socket I/O for one session; payloads grow as their bytes arrive, so a header that announces a large
// (but legal) payload commits no memory the peer has not actually sent.
#include "server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>

namespace confidant::agent {

namespace {

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // main() ignores SIGPIPE where MSG_NOSIGNAL does not exist
#endif

constexpr size_t kReadChunkBytes = 4u << 20;

// Reads exactly n bytes. Returns n, 0 on a clean EOF before the first byte, or -1 on error / EOF mid-way.
long read_full(int fd, uint8_t* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, buf + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return got == 0 && r == 0 ? 0 : -1;
    got += static_cast<size_t>(r);
  }
  return static_cast<long>(n);
}

bool write_full(int fd, const uint8_t* buf, size_t n) {
  size_t sent = 0;
  while (sent < n) {
    ssize_t r = ::send(fd, buf + sent, n - sent, kSendFlags);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    sent += static_cast<size_t>(r);
  }
  return true;
}

bool send_frame(int fd, const Frame& f, Stats& stats) {
  const std::vector<uint8_t> bytes = encode_frame(f);
  stats.bytes_out += bytes.size();
  return write_full(fd, bytes.data(), bytes.size());
}

// Closing a socket with unread input makes the kernel send RST, which can destroy the ERROR frame just written
// before the host reads it. So: send FIN, drain what the host already sent (briefly, bounded), then close.
void close_gracefully(int fd) {
  ::shutdown(fd, SHUT_WR);
  timeval tv{0, 200 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  uint8_t sink[4096];
  for (size_t drained = 0; drained < (1u << 20);) {
    const ssize_t n = ::recv(fd, sink, sizeof sink, 0);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
  ::close(fd);
}

}  // namespace

Listener::Listener(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket() failed: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // 127.0.0.1 only: the host reaches it through an adb tunnel
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 1) != 0) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(e));
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
}

int Listener::accept_one(int timeout_s) {
  if (fd_ < 0) return -1;
  pollfd p{fd_, POLLIN, 0};
  const int timeout_ms = timeout_s > 0 ? timeout_s * 1000 : -1;
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  int conn = -1;
  if (r > 0) {
    do {
      conn = ::accept(fd_, nullptr, nullptr);
    } while (conn < 0 && errno == EINTR);
  }
  ::close(fd_);
  fd_ = -1;
  if (conn >= 0) {
    int one = 1;
    ::setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return conn;
}

// Waits until the host sends something (or closes): true, or false after timeout_s of silence (0 = forever).
static bool wait_for_request(int fd, int timeout_s) {
  if (timeout_s <= 0) return true;
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    const int r = ::poll(&p, 1, timeout_s * 1000);
    if (r < 0 && errno == EINTR) continue;
    return r != 0;  // an error or hang-up counts as readable: the read that follows sees it
  }
}

ServeResult serve_connection(int fd, Session& session, int silence_timeout_s) {
  Stats& stats = session.stats();
  ServeResult result = ServeResult::SessionEnded;
  for (;;) {
    if (!wait_for_request(fd, silence_timeout_s)) {
      result = ServeResult::HostSilent;
      break;
    }
    uint8_t hb[kFrameHeaderBytes];
    if (read_full(fd, hb, sizeof hb) != static_cast<long>(sizeof hb)) break;  // host closed (or died)
    stats.bytes_in += sizeof hb;
    Frame req;
    req.header = decode_header(hb);
    const std::string bad = check_header(req.header);
    if (!bad.empty()) {
      // After a framing error the stream position is lost: answer and close (docs/protocol.md "Frame").
      send_frame(fd, Session::bad_frame(req.header.request_id, bad + "; closing the connection"), stats);
      break;
    }
    bool ok = true;
    size_t got = 0;
    while (got < req.header.payload_bytes) {
      const size_t n = std::min<size_t>(kReadChunkBytes, req.header.payload_bytes - got);
      try {
        req.payload.resize(got + n);
      } catch (const std::bad_alloc&) {
        send_frame(fd, Session::bad_frame(req.header.request_id, "cannot allocate a " +
                                                                      std::to_string(req.header.payload_bytes) +
                                                                      "-byte payload; closing the connection"),
                   stats);
        ok = false;
        break;
      }
      if (read_full(fd, req.payload.data() + got, n) != static_cast<long>(n)) {
        ok = false;
        break;
      }
      got += n;
    }
    if (!ok) break;
    stats.bytes_in += req.payload.size();
    if (req.header.kind == static_cast<uint16_t>(Cmd::Nop) && session.authenticated()) {
      // No reply: the frame only carried the host's TCP acknowledgement of our last reply (docs/protocol.md "NOP").
      if (req.payload.empty()) continue;
      send_frame(fd, Session::bad_frame(req.header.request_id, "NOP carries no payload; closing the connection"), stats);
      break;
    }
    bool close_after = false;
    const Frame reply = session.handle(req, &close_after);
    if (!send_frame(fd, reply, stats)) break;
    if (close_after) {
      if (req.header.kind == static_cast<uint16_t>(Cmd::Shutdown) && reply.header.kind != kErrorKind) {
        result = ServeResult::Shutdown;
      }
      break;
    }
  }
  close_gracefully(fd);
  return result;
}

ServeResult serve_one(Listener& listener, Session& session, int idle_timeout_s, int silence_timeout_s) {
  const int fd = listener.accept_one(idle_timeout_s);
  if (fd < 0) return ServeResult::IdleTimeout;
  return serve_connection(fd, session, silence_timeout_s);
}

}  // namespace confidant::agent

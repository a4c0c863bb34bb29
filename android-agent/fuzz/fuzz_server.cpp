// libFuzzer target: the agent's real frame reader and socket loop (serve_connection in server.cpp), fed the input
// as the byte stream a host sends, through a socketpair; a session without a stage answers. Checks, besides "no
// crash, no leak, no UB": every reply is a well-formed frame that decodes, answers the request with the same id in
// order, a NOP after the handshake gets no reply (or BAD_FRAME and the end of the session if it carries a payload),
// a bad header gets exactly one BAD_FRAME reply and ends the session, and the agent stops reading exactly
// where docs/protocol.md says (closing error, SHUTDOWN, bad header, end of input), never before.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <thread>
#include <vector>

#include "fuzz_common.h"
#include "server.h"

using namespace confidant::agent;

namespace {

// The host side: writes all of `in` (stopping if the agent closes first) while reading every reply byte until EOF.
// One thread does both with poll, so neither side can block the other on a full socket buffer.
std::vector<uint8_t> play_host(int fd, const uint8_t* in, size_t size) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::vector<uint8_t> out;
  size_t sent = 0;
  bool writing = true;
  if (size == 0) {
    ::shutdown(fd, SHUT_WR);
    writing = false;
  }
  for (;;) {
    pollfd p{fd, static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, 10000) <= 0) confidant::fuzz::fail("the agent neither replied nor closed within 10 s");
    if (writing && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = ::send(fd, in + sent, size - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) writing = false;  // the agent closed its side
      if (sent == size) {
        ::shutdown(fd, SHUT_WR);  // end of input: the agent sees EOF, like a host closing the connection
        writing = false;
      }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      uint8_t buf[65536];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        out.insert(out.end(), buf, buf + n);
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        break;  // the agent closed the connection
      }
    }
  }
  ::close(fd);
  return out;
}

struct Request {
  FrameHeader header;
  bool header_ok = false;
  bool complete = false;  // the whole payload is in the input
  std::vector<uint8_t> payload;
};

// The requests in the input, split as the agent must split them; stops after a bad header or a truncated frame.
std::vector<Request> split_requests(const uint8_t* data, size_t size) {
  std::vector<Request> out;
  size_t i = 0;
  while (size - i >= kFrameHeaderBytes) {
    Request r;
    r.header = decode_header(data + i);
    i += kFrameHeaderBytes;
    r.header_ok = check_header(r.header).empty();
    r.complete = r.header_ok && r.header.payload_bytes <= size - i;
    if (r.complete) {
      r.payload.assign(data + i, data + i + r.header.payload_bytes);
      i += r.header.payload_bytes;
    }
    out.push_back(std::move(r));
    if (!out.back().complete) break;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<Request> requests = split_requests(data, size);
  for (const Request& r : requests) {
    if (r.complete && !confidant::fuzz::safe_to_send(r.header.kind, r.payload)) return 0;
  }

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) confidant::fuzz::fail("socketpair failed");
  SessionOptions opts;
  opts.token = confidant::fuzz::kToken;
  opts.abi = "fuzz";
  opts.engine = &confidant::fuzz::engine();
  opts.memory_budget_bytes = 256u << 20;
  Session session(opts);
  std::vector<uint8_t> replies;
  std::thread host([&] { replies = play_host(fds[1], data, size); });
  const ServeResult result = serve_connection(fds[0], session);  // closes fds[0]
  host.join();

  // Walk the requests and the replies together.
  size_t pos = 0;
  bool shutdown = false;
  bool authenticated = false;  // a HELLO has been answered without an error
  for (const Request& req : requests) {
    if (req.header_ok && !req.complete) break;  // the host "vanished" mid-frame: no reply
    const bool nop = req.header_ok && req.header.kind == static_cast<uint16_t>(Cmd::Nop) && authenticated;
    if (nop && req.payload.empty()) continue;  // docs/protocol.md "NOP": read and discarded, never answered
    FUZZ_CHECK(replies.size() - pos >= kFrameHeaderBytes, "no reply to a complete request");
    Frame reply;
    reply.header = decode_header(replies.data() + pos);
    pos += kFrameHeaderBytes;
    FUZZ_CHECK(check_header(reply.header).empty(), "reply header: " + check_header(reply.header));
    FUZZ_CHECK(replies.size() - pos >= reply.header.payload_bytes, "reply payload cut short");
    reply.payload.assign(replies.begin() + pos, replies.begin() + pos + reply.header.payload_bytes);
    pos += reply.header.payload_bytes;
    FUZZ_CHECK(reply.header.request_id == req.header.request_id, "reply id does not echo the request id");
    if (!req.header_ok) {
      FUZZ_CHECK(reply.header.kind == kErrorKind && decode_error_reply(reply.payload).code == ErrorCode::BadFrame,
                 "a bad header did not get BAD_FRAME");
      break;
    }
    if (nop) {
      FUZZ_CHECK(reply.header.kind == kErrorKind && decode_error_reply(reply.payload).code == ErrorCode::BadFrame,
                 "a NOP with a payload did not get BAD_FRAME");
      break;
    }
    confidant::fuzz::check_reply_decodes(req.header.kind, reply);
    if (req.header.kind == static_cast<uint16_t>(Cmd::Hello) && reply.header.kind != kErrorKind) authenticated = true;
    if (reply.header.kind == kErrorKind) {
      if (error_closes_connection(decode_error_reply(reply.payload).code)) break;
    } else if (req.header.kind == static_cast<uint16_t>(Cmd::Shutdown)) {
      shutdown = true;
      break;
    }
  }
  FUZZ_CHECK(pos == replies.size(), std::to_string(replies.size() - pos) + " reply bytes after the session ended");
  FUZZ_CHECK((result == ServeResult::Shutdown) == shutdown, "serve_connection's result does not match SHUTDOWN");
  return 0;
}

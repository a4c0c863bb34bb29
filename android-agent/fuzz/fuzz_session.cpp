// libFuzzer target: Session::handle, the agent's request dispatch, fed a sequence of requests in-process (no socket,
// so the fuzzer spends its time on commands and payloads rather than on frame headers; fuzz_server covers those).
// Input layout (docs in README.md):
//   byte 0: mode. bit 0: send a valid HELLO first; bits 1-2: then LOAD_STAGE stage k-1 of $CONFIDANT_FUZZ_STAGES
//           (k = 0: no stage; ignored when the variable is unset); bit 3: a 2 MiB memory budget (else 256 MiB).
//   then repeated: u16 kind, u16 payload_bytes, payload (truncated to what is left).
// Checked for every reply, besides "no crash, no leak, no UB": request id echoed, length field right, kind is the
// reply or ERROR, every reply decodes, before HELLO only HELLO is served (anything else: HANDSHAKE_REQUIRED and
// close; a wrong token or version: closed), error codes close the connection exactly when docs/protocol.md says so,
// unknown kinds are UNKNOWN_COMMAND.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "session.h"

using namespace confidant::agent;
using confidant::fuzz::fail;
using confidant::fuzz::safe_to_send;
using confidant::fuzz::stages;

namespace {

Frame request(uint16_t kind, uint32_t id, std::vector<uint8_t> payload) {
  Frame f;
  f.header.kind = kind;
  f.header.request_id = id;
  f.header.payload_bytes = static_cast<uint32_t>(payload.size());
  f.payload = std::move(payload);
  return f;
}

// CONFIDANT_FUZZ_VERBOSE=1 prints every request and its outcome (for reading a crash input or checking seeds).
bool verbose() {
  static const bool v = std::getenv("CONFIDANT_FUZZ_VERBOSE") != nullptr;
  return v;
}

ErrorCode error_code(const Frame& reply) { return decode_error_reply(reply.payload).code; }

// Sends one request and checks the reply; returns whether the connection stays open.
bool exchange(Session& s, const Frame& req) {
  const bool was_authenticated = s.authenticated();
  bool close_after = false;
  const Frame reply = s.handle(req, &close_after);
  const uint16_t kind = req.header.kind;
  if (verbose()) {
    std::fprintf(stderr, "  %s (%zu bytes) -> %s\n", cmd_name(kind) ? cmd_name(kind) : std::to_string(kind).c_str(),
                 req.payload.size(),
                 reply.header.kind == kErrorKind ? decode_error_reply(reply.payload).message.c_str() : "ok");
  }
  FUZZ_CHECK(reply.header.request_id == req.header.request_id, "request id not echoed");
  FUZZ_CHECK(reply.header.payload_bytes == reply.payload.size(), "payload_bytes does not match the payload");
  FUZZ_CHECK(reply.header.magic == kFrameMagic && reply.header.flags == 0, "reply header is not a valid frame");
  confidant::fuzz::check_reply_decodes(kind, reply);
  const bool is_error = reply.header.kind == kErrorKind;
  if (!was_authenticated) {
    if (kind != static_cast<uint16_t>(Cmd::Hello)) {
      FUZZ_CHECK(is_error && error_code(reply) == ErrorCode::HandshakeRequired,
                 "command " + std::to_string(kind) + " before HELLO was not refused with HANDSHAKE_REQUIRED");
    }
    FUZZ_CHECK(s.authenticated() == !is_error, "authentication state does not match the HELLO reply");
    if (is_error) {
      // Wrong token or version: refused and closed. A HELLO payload that does not decode is BAD_ARGUMENT, which
      // docs/protocol.md keeps open (the peer stays unauthenticated and only HELLO is served, so this gives it
      // nothing: every well-formed HELLO with a wrong token still closes).
      const ErrorCode code = error_code(reply);
      FUZZ_CHECK(code == ErrorCode::AuthFailed || code == ErrorCode::VersionMismatch ||
                     code == ErrorCode::BadArgument || code == ErrorCode::HandshakeRequired,
                 std::string("unexpected error before the handshake: ") + error_name(code));
      FUZZ_CHECK(close_after == error_closes_connection(code), "close-after does not follow the error code");
    } else {
      FUZZ_CHECK(!close_after, "an accepted HELLO closed the connection");
    }
  } else {
    FUZZ_CHECK(s.authenticated(), "the session lost its authentication");
    if (!is_known_cmd(kind)) {
      FUZZ_CHECK(is_error && error_code(reply) == ErrorCode::UnknownCommand && !close_after,
                 "unknown kind " + std::to_string(kind) + " was not UNKNOWN_COMMAND with the connection open");
    }
    if (is_error) {
      FUZZ_CHECK(close_after == error_closes_connection(error_code(reply)), "close-after does not follow the code");
      FUZZ_CHECK(!error_closes_connection(error_code(reply)), "a closing error after the handshake");
    } else {
      FUZZ_CHECK(close_after == (kind == static_cast<uint16_t>(Cmd::Shutdown)), "only SHUTDOWN closes on success");
    }
  }
  return !close_after;
}

void expect_ok(Session& s, const Frame& req, const char* what) {
  bool close_after = false;
  const Frame reply = s.handle(req, &close_after);
  if (reply.header.kind == kErrorKind) {
    fail(std::string("harness ") + what + " failed: " + decode_error_reply(reply.payload).message);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  SessionOptions opts;
  opts.token = confidant::fuzz::kToken;
  opts.abi = "fuzz";
  opts.engine = &confidant::fuzz::engine();
  // 2 MiB holds a stories260K stage with rank-2 LoRA and a few token rows, so larger batches meet OUT_OF_MEMORY.
  opts.memory_budget_bytes = (mode & 8) ? (2u << 20) : (256u << 20);
  Session s(opts);
  if (mode & 1) {
    expect_ok(s, request(0x0001, 0, encode(HelloRequest{kProtocolVersion, confidant::fuzz::kToken})), "HELLO");
    const size_t k = (mode >> 1) & 3;
    if (k > 0 && k <= stages().size()) {
      // rank 2, every module, A trainable: the largest LoRA surface for the fewest bytes.
      const LoadStageRequest ls{stages()[k - 1], 2, 4.0f, 0x7F, kLoadFlagTrainA};
      expect_ok(s, request(0x0002, 0, encode(ls)), "LOAD_STAGE");
    }
  }
  size_t i = 1;
  uint32_t id = 1;
  while (i + 4 <= size) {
    const uint16_t kind = static_cast<uint16_t>(data[i] | (data[i + 1] << 8));
    size_t n = static_cast<size_t>(data[i + 2] | (data[i + 3] << 8));
    i += 4;
    if (n > size - i) n = size - i;
    // PROFILE on a loaded stage runs every layer `reps` times for a shape up to 2^24 rows: minutes per input,
    // which says nothing about parsing. Without a stage it is NOT_LOADED after its checks, so it stays in.
    if (kind == static_cast<uint16_t>(Cmd::Profile) && s.model()) {
      i += n;
      continue;
    }
    const Frame req = request(kind, id++, std::vector<uint8_t>(data + i, data + i + n));
    i += n;
    if (!safe_to_send(kind, req.payload)) continue;
    if (!exchange(s, req)) break;
  }
  return 0;
}

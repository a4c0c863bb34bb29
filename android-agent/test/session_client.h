// Test helper: drives a Session in-process with encoded frames, as the host would over TCP.
#pragma once
#include "check.h"
#include "protocol.h"
#include "session.h"

namespace agent_test {

// The engine in-process sessions run on: the fast CPU backend, no OpenCL (tests that split layers build their own).
inline confidant::agent::Engine& test_engine() {
  static const std::unique_ptr<confidant::agent::Engine> engine = [] {
    confidant::agent::EngineOptions o;
    o.secondary = "none";
    return confidant::agent::Engine::create(o);
  }();
  return *engine;
}

struct Reply {
  confidant::agent::Frame frame;
  bool close = false;
  bool is_error() const { return frame.header.kind == confidant::agent::kErrorKind; }
  confidant::agent::ErrorReply error() const { return confidant::agent::decode_error_reply(frame.payload); }
};

inline Reply call(confidant::agent::Session& s, confidant::agent::Cmd cmd, const std::vector<uint8_t>& payload) {
  static uint32_t next_id = 0x80000001u;
  confidant::agent::Frame f;
  f.header.kind = static_cast<uint16_t>(cmd);
  f.header.request_id = next_id++;
  f.header.payload_bytes = static_cast<uint32_t>(payload.size());
  f.payload = payload;
  Reply r;
  r.frame = s.handle(f, &r.close);
  if (r.frame.header.request_id != f.header.request_id) fail(__FILE__, __LINE__, "reply request id differs");
  return r;
}

// Calls and requires a non-error reply of the right kind; returns its payload.
inline std::vector<uint8_t> ok(confidant::agent::Session& s, confidant::agent::Cmd cmd,
                               const std::vector<uint8_t>& payload, const char* file, int line) {
  Reply r = call(s, cmd, payload);
  if (r.is_error()) {
    const auto e = r.error();
    fail(file, line, std::string(confidant::agent::cmd_name(static_cast<uint16_t>(cmd))) + " failed: " +
                         confidant::agent::error_name(e.code) + ": " + e.message);
    return {};
  }
  if (r.frame.header.kind != (static_cast<uint16_t>(cmd) | confidant::agent::kReplyBit)) {
    fail(file, line, "reply kind mismatch");
  }
  return r.frame.payload;
}

}  // namespace agent_test

#define CALL_OK(session, cmd, payload) agent_test::ok(session, cmd, payload, __FILE__, __LINE__)

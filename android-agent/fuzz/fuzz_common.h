// Shared by the libFuzzer targets in this folder: the fixed session token and engine, a failure that libFuzzer
// records as a crash, and the checks every reply frame must pass. Not a fuzz target itself (no entry point).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <memory>
#include <string>

#include "engine.h"
#include "protocol.h"

namespace confidant::fuzz {

using namespace confidant::agent;

inline const std::string kToken = "fuzz-token-0123456789abcdef";

// A broken invariant is a finding like a crash: print why and abort so libFuzzer saves the input.
[[noreturn]] inline void fail(const std::string& why) {
  std::fprintf(stderr, "FUZZ INVARIANT BROKEN: %s\n", why.c_str());
  std::abort();
}
#define FUZZ_CHECK(cond, why) \
  do {                        \
    if (!(cond)) ::confidant::fuzz::fail(std::string(#cond) + ": " + (why)); \
  } while (0)

// One engine for the whole process (creating backends per input would dominate the run time): one CPU thread and
// no OpenCL, so an input's outcome does not depend on the machine's GPU driver.
inline Engine& engine() {
  static const std::unique_ptr<Engine> e = [] {
    EngineOptions o;
    o.backend = "cpu";
    o.threads = 1;
    o.secondary = "none";
    return Engine::create(o);
  }();
  return *e;
}

// Stage files from $CONFIDANT_FUZZ_STAGES (colon-separated paths; scripts/fuzz.sh packs stories260K stages).
inline const std::vector<std::string>& stages() {
  static const std::vector<std::string> list = [] {
    std::vector<std::string> out;
    const char* env = std::getenv("CONFIDANT_FUZZ_STAGES");
    std::string s = env ? env : "";
    size_t i = 0;
    while (i < s.size()) {
      const size_t j = s.find(':', i);
      const size_t end = j == std::string::npos ? s.size() : j;
      if (end > i) out.push_back(s.substr(i, end - i));
      i = end + 1;
    }
    return out;
  }();
  return list;
}

// LOAD_STAGE opens whatever path it is given: a fuzzed "/dev/stdin" would block and "/dev/zero" map forever. Such
// requests are dropped; names without a '/' (not found, or a non-stage file of the working directory) and the
// stages under test go through, as do payloads that do not decode (the agent must refuse those itself).
inline bool safe_to_send(uint16_t kind, const std::vector<uint8_t>& payload) {
  if (kind != static_cast<uint16_t>(Cmd::LoadStage)) return true;
  std::string path;
  try {
    path = decode_load_stage_request(payload).path;
  } catch (const DecodeError&) {
    return true;
  }
  if (path.find('/') == std::string::npos) return true;
  for (const std::string& st : stages()) {
    if (path == st) return true;
  }
  return false;
}

// Decodes a reply payload with the decoder of its command: every reply the agent sends must parse on the host.
inline void check_reply_decodes(uint16_t request_kind, const Frame& reply) {
  const std::vector<uint8_t>& p = reply.payload;
  try {
    if (reply.header.kind == kErrorKind) {
      const ErrorReply e = decode_error_reply(p);
      const uint32_t code = static_cast<uint32_t>(e.code);
      FUZZ_CHECK(code >= 1 && code <= 10, "error code " + std::to_string(code) + " is not in docs/protocol.md");
      FUZZ_CHECK(!e.message.empty(), "error without a message");
      return;
    }
    FUZZ_CHECK(reply.header.kind == (request_kind | kReplyBit), "reply kind does not match the request");
    switch (static_cast<Cmd>(request_kind)) {
      case Cmd::Hello: decode_hello_reply(p); break;
      case Cmd::LoadStage: decode_load_stage_reply(p); break;
      case Cmd::Forward: decode_forward_reply(p); break;
      case Cmd::Backward: decode_backward_reply(p); break;
      case Cmd::GradNorm: decode_grad_norm_reply(p); break;
      case Cmd::GetLora: decode_get_lora_reply(p); break;
      case Cmd::Stats: decode_stats_reply(p); break;
      case Cmd::ZoForward: decode_zo_forward_reply(p); break;
      case Cmd::Profile: decode_profile_reply(p); break;
      case Cmd::SetLora:
      case Cmd::OptimStep:
      case Cmd::Shutdown:
      case Cmd::ZeroGrad:
      case Cmd::ZoStep:
      case Cmd::SetSplit: decode_empty(p, cmd_name(request_kind)); break;
      default: fail("a successful reply to unknown kind " + std::to_string(request_kind));
    }
  } catch (const DecodeError& e) {
    fail(std::string("the agent's reply to ") + (cmd_name(request_kind) ? cmd_name(request_kind) : "?") +
         " does not decode: " + e.what());
  }
}

}  // namespace confidant::fuzz

// libFuzzer target: every payload decoder of protocol.h (requests the agent decodes, replies the tests and tools
// decode) and the frame header codec. Input: one selector byte, then the payload. Beyond "no crash, no UB", a
// payload that decodes must re-encode to exactly the same bytes: the encoding is canonical (docs/protocol.md has
// one layout per message), so any difference means the decoder accepted something the format does not allow.
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_common.h"
#include "payload_codecs.h"

using namespace confidant::agent;
using confidant::fuzz::Bytes;
using confidant::fuzz::codecs;
using confidant::fuzz::fail;

namespace {

// decode_header / encode_header are a bijection on 16 bytes; check_header must not depend on anything else.
void header_roundtrip(const uint8_t* data, size_t size) {
  if (size < kFrameHeaderBytes) return;
  const FrameHeader h = decode_header(data);
  uint8_t again[kFrameHeaderBytes];
  encode_header(h, again);
  if (std::memcmp(again, data, kFrameHeaderBytes) != 0) fail("frame header does not round-trip");
  const bool ok = check_header(h).empty();
  const bool want = h.magic == kFrameMagic && h.flags == 0 && h.payload_bytes <= kMaxPayloadBytes;
  if (ok != want) fail("check_header accepts a header it should refuse, or the reverse");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  header_roundtrip(data + 1, size - 1);
  const auto& all = codecs();
  const auto& [name, roundtrip] = all[data[0] % all.size()];
  const Bytes payload(data + 1, data + size);
  Bytes again;
  try {
    again = roundtrip(payload);
  } catch (const DecodeError&) {
    return 0;  // refused: what a malformed payload must get (BAD_ARGUMENT on the wire)
  }
  if (again != payload) {
    fail(std::string(name) + ": a payload of " + std::to_string(payload.size()) + " bytes decoded but re-encodes to " +
         std::to_string(again.size()) + " different bytes");
  }
  return 0;
}

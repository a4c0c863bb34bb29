// Unit tests of the wire primitives and small pure helpers: bounds checks on hostile lengths, header checks,
// CRC-32 against its published check value, /proc status parsing, constant-time compare, budget wording.
#include <cstring>

#include "check.h"
#include "crc32.h"
#include "memory_budget.h"
#include "protocol.h"
#include "session.h"
#include "stats.h"
#include "wire.h"

using namespace confidant::agent;
using agent_test::contains;

static void test_header() {
  FrameHeader h;
  h.kind = 0x8004;
  h.request_id = 0xA1B2C3D4;
  h.payload_bytes = 7;
  uint8_t b[16];
  encode_header(h, b);
  const uint8_t want[16] = {'C', 'F', 'N', 'D', 0x04, 0x80, 0, 0, 0xD4, 0xC3, 0xB2, 0xA1, 7, 0, 0, 0};
  CHECK(std::memcmp(b, want, 16) == 0);
  FrameHeader d = decode_header(b);
  CHECK_EQ(d.kind, 0x8004);
  CHECK_EQ(d.request_id, 0xA1B2C3D4u);
  CHECK(check_header(d).empty());
  d.magic = 0x12345678;
  CHECK(contains(check_header(d), "magic"));
  d = decode_header(b);
  d.flags = 1;
  CHECK(contains(check_header(d), "flags"));
  d.flags = 0;
  d.payload_bytes = kMaxPayloadBytes;
  CHECK(check_header(d).empty());
  d.payload_bytes = kMaxPayloadBytes + 1;
  CHECK(contains(check_header(d), "exceeds"));
}

static void test_reader_bounds() {
  {
    std::vector<uint8_t> p = {1, 2, 3};
    Reader r(p);
    CHECK_THROWS(DecodeError, r.u32(), "too short");
  }
  {
    Writer w;
    w.u32(kMaxStringBytes + 1);  // a string longer than allowed: rejected before reading or allocating
    std::vector<uint8_t> p = w.take();
    Reader r(p);
    CHECK_THROWS(DecodeError, r.string(), "exceeds");
  }
  {
    Writer w;
    w.u32(100);  // claims 100 bytes, has 2
    w.u16(0);
    std::vector<uint8_t> p = w.take();
    Reader r(p);
    CHECK_THROWS(DecodeError, r.string(), "too short");
  }
  {
    // f32 [65536, 65536, 65536, 65536]: 2^66 bytes; must be refused without overflow or allocation.
    Writer w;
    w.u8(0), w.u8(4), w.u16(0);
    for (int i = 0; i < 4; ++i) w.u32(65536);
    std::vector<uint8_t> p = w.take();
    Reader r(p);
    CHECK_THROWS(DecodeError, r.tensor(), "needs more bytes");
  }
  {
    Writer w;
    w.u8(0), w.u8(5), w.u16(0);
    std::vector<uint8_t> p = w.take();
    Reader r(p);
    CHECK_THROWS(DecodeError, r.tensor(), "ndim");
  }
  {
    Writer w;
    w.u8(9), w.u8(0), w.u16(0);
    std::vector<uint8_t> p = w.take();
    Reader r(p);
    CHECK_THROWS(DecodeError, r.tensor(), "dtype");
  }
  {
    Writer w;
    w.u8(0), w.u8(0), w.u16(1);
    w.f32(1.0f);
    std::vector<uint8_t> p = w.take();
    Reader r(p);
    CHECK_THROWS(DecodeError, r.tensor(), "reserved");
  }
  {
    Writer w;
    w.u32(0xFFFFFFFF);  // a tensor list count no payload can hold
    std::vector<uint8_t> p = w.take();
    Reader r(p);
    CHECK_THROWS(DecodeError, r.tensor_list(), "count");
  }
  {
    // Scalar tensor (ndim 0) is one element.
    Writer w;
    Tensor t;
    t.dtype = DType::F32;
    t.data.resize(4);
    float one = 1.0f;
    std::memcpy(t.data.data(), &one, 4);
    w.tensor(t);
    std::vector<uint8_t> p = w.take();
    CHECK_EQ(p.size(), 8u);
    Reader r(p);
    Tensor d = r.tensor();
    CHECK_EQ(d.elements(), 1u);
    CHECK(d.f32()[0] == 1.0f);
    r.expect_end("scalar");
  }
  {
    std::vector<uint8_t> p = {2};
    Reader r(p);
    CHECK_THROWS(DecodeError, r.flag(), "0 or 1");
  }
}

static void test_payload_lengths() {
  // Shorter and longer payloads than the command's fields are both errors.
  OptimStepRequest o;
  o.step = 3;
  o.lr = 1e-3f;
  std::vector<uint8_t> p = encode(o);
  CHECK_EQ(p.size(), 28u);
  CHECK_EQ(decode_optim_step_request(p).step, 3u);
  std::vector<uint8_t> shorter(p.begin(), p.end() - 1), longer = p;
  longer.push_back(0);
  CHECK_THROWS(DecodeError, decode_optim_step_request(shorter), "too short");
  CHECK_THROWS(DecodeError, decode_optim_step_request(longer), "trailing");
  CHECK_THROWS(DecodeError, decode_empty({0}, "STATS"), "trailing");
}

static void test_roundtrip_forward() {
  ForwardRequest f;
  f.micro_id = 9;
  f.flags = 3;
  int32_t ids[6] = {1, 2, 3, 4, 5, 6};
  float mask[6] = {1, 1, 0, 1, 0.5f, 1};
  f.input = Tensor::make_i32({2, 3}, ids);
  f.has_targets = true;
  f.targets = Tensor::make_i32({2, 3}, ids);
  f.mask = Tensor::make_f32({2, 3}, mask);
  std::vector<uint8_t> p = encode(f);
  ForwardRequest d = decode_forward_request(p);
  CHECK_EQ(d.micro_id, 9u);
  CHECK(d.has_targets && d.mask.f32()[4] == 0.5f && d.input.i32()[5] == 6);
  CHECK(encode(d) == p);
  ForwardReply r;
  r.output_kind = 1;
  r.loss_sum = 3.25;
  r.weight_sum = 4;
  std::vector<uint8_t> rp = encode(r);
  CHECK_EQ(rp.size(), 1u + 8 + 8 + 1);
  CHECK(decode_forward_reply(rp).loss_sum == 3.25);
}

static void test_helpers() {
  const char* s = "123456789";
  CHECK_EQ(crc32(0, s, 9), 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  CHECK_EQ(crc32(crc32(0, s, 4), s + 4, 5), 0xCBF43926u);
  MemoryUsage m = parse_proc_status("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t   1024 kB\n");
  CHECK_EQ(m.rss_bytes, 1024u * 1024);
  CHECK_EQ(m.peak_rss_bytes, 2048u * 1024);
  MemoryUsage live = read_memory_usage();
  CHECK(live.peak_rss_bytes > 0);
  CHECK(constant_time_equal("secret", "secret"));
  CHECK(!constant_time_equal("secreT", "secret"));
  CHECK(!constant_time_equal("secret", "secret2"));
  CHECK(!constant_time_equal("", "secret"));
  CHECK(format_bytes(1536) == "1.5 KiB");
  CHECK(format_bytes(12) == "12 B");
  MemoryBudget b(100 << 20);
  CHECK(b.check(50 << 20, "x", "y").empty());
  const std::string refusal = b.check(150 << 20, "FORWARD", "detail");
  CHECK(contains(refusal, "needs 150.0 MiB") && contains(refusal, "budget is 100.0 MiB"));
  CHECK(MemoryBudget(0).check(~0ull, "x", "y").empty());
}

int main() {
  test_header();
  test_reader_bounds();
  test_payload_lengths();
  test_roundtrip_forward();
  test_helpers();
  return agent_test::finish("agent.wire");
}

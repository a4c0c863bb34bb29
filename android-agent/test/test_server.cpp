// Runs the real confidant-agent binary and talks TCP to it: the stdout line and --port-file, listening on
// 127.0.0.1 only, a normal session ending in SHUTDOWN, and the refusals that must close the connection (wrong
// token, wrong version, command before HELLO, bad magic, absurd length, non-zero flags) without a crash.
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "check.h"
#include "protocol.h"

using namespace confidant::agent;

extern char** environ;

namespace {

const std::string kTmp = std::string(AGENT_TEST_DATA) + "/server-test";
const std::string kToken = "s3cret-token-0123456789abcdef";

struct Agent {
  pid_t pid = -1;
  uint16_t port = 0;
  std::string stdout_path, port_file;
};

// The program (and its arguments) that runs the agent binary in a cross build, e.g. "qemu-aarch64-static -L
// /usr/aarch64-linux-gnu": the environment variable CONFIDANT_TEST_EMULATOR if set, else the build's own
// (CMAKE_CROSSCOMPILING_EMULATOR), else none. Space-separated.
std::vector<std::string> emulator_prefix() {
#ifdef CONFIDANT_TEST_EMULATOR
  std::string spec = CONFIDANT_TEST_EMULATOR;
#else
  std::string spec;
#endif
  if (const char* env = std::getenv("CONFIDANT_TEST_EMULATOR")) spec = env;
  std::vector<std::string> out;
  size_t i = 0;
  while (i < spec.size()) {
    const size_t j = spec.find(' ', i);
    const size_t end = j == std::string::npos ? spec.size() : j;
    if (end > i) out.push_back(spec.substr(i, end - i));
    i = end + 1;
  }
  return out;
}

// Starts the agent; waits for its port file. extra: more CLI arguments.
Agent start_agent(const std::string& tag, std::vector<std::string> extra = {}, bool with_token = true) {
  Agent a;
  const std::string token_file = kTmp + "/" + tag + ".token";
  agent_test::write_file(token_file, std::vector<uint8_t>(kToken.begin(), kToken.end()));
  a.port_file = kTmp + "/" + tag + ".port";
  a.stdout_path = kTmp + "/" + tag + ".stdout";
  ::unlink(a.port_file.c_str());
  std::vector<std::string> args = emulator_prefix();
  args.insert(args.end(), {AGENT_BINARY, "--port", "0", "--port-file", a.port_file, "--idle-timeout-s", "20"});
  if (with_token) args.insert(args.end(), {"--token-file", token_file});
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(&s[0]);
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, a.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (posix_spawn(&a.pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) a.pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  CHECK_MSG(a.pid > 0, "cannot spawn " AGENT_BINARY);
  return a;
}

bool wait_port(Agent& a) {
  for (int i = 0; i < 500; ++i) {
    const std::vector<uint8_t> b = agent_test::read_file(a.port_file);
    if (!b.empty()) {
      a.port = static_cast<uint16_t>(std::atoi(std::string(b.begin(), b.end()).c_str()));
      return a.port != 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Waits up to timeout_ms for the agent to exit; returns its exit code, -1 on signal, -2 if still running (killed).
int wait_exit(Agent& a, int timeout_ms = 5000) {
  for (int i = 0; i < timeout_ms / 10; ++i) {
    int status = 0;
    if (waitpid(a.pid, &status, WNOHANG) == a.pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(a.pid, SIGKILL);
  waitpid(a.pid, nullptr, 0);
  return -2;
}

int connect_to(uint32_t addr_be, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = addr_be;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool send_all(int fd, const std::vector<uint8_t>& b) {
  size_t off = 0;
  while (off < b.size()) {
    ssize_t n = send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += size_t(n);
  }
  return true;
}

bool recv_all(int fd, uint8_t* p, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t r = recv(fd, p + off, n - off, 0);
    if (r <= 0) return false;
    off += size_t(r);
  }
  return true;
}

bool read_frame(int fd, Frame* f) {
  uint8_t h[kFrameHeaderBytes];
  if (!recv_all(fd, h, sizeof h)) return false;
  f->header = decode_header(h);
  f->payload.resize(f->header.payload_bytes);
  return f->payload.empty() || recv_all(fd, f->payload.data(), f->payload.size());
}

// True when the peer has closed: recv returns 0 (not a timeout).
bool peer_closed(int fd) {
  uint8_t b;
  return recv(fd, &b, 1, 0) == 0;
}

std::vector<uint8_t> frame_bytes(uint16_t kind, uint32_t id, const std::vector<uint8_t>& payload) {
  Frame f;
  f.header.kind = kind;
  f.header.request_id = id;
  f.payload = payload;
  return encode_frame(f);
}

Frame roundtrip(int fd, uint16_t kind, uint32_t id, const std::vector<uint8_t>& payload) {
  Frame f;
  CHECK(send_all(fd, frame_bytes(kind, id, payload)));
  CHECK_MSG(read_frame(fd, &f), "no reply to kind " + std::to_string(kind));
  CHECK_EQ(f.header.request_id, id);
  return f;
}

void expect_error_frame(const Frame& f, ErrorCode code, const std::string& needle, int line) {
  if (f.header.kind != kErrorKind) {
    agent_test::fail(__FILE__, line, std::string("expected ERROR ") + error_name(code));
    return;
  }
  const ErrorReply e = decode_error_reply(f.payload);
  if (e.code != code || !agent_test::contains(e.message, needle)) {
    agent_test::fail(__FILE__, line, std::string("expected ") + error_name(code) + " '" + needle + "', got " +
                                         error_name(e.code) + ": " + e.message);
  }
}

uint32_t loopback() { return htonl(INADDR_LOOPBACK); }

// One agent per refusal: each must answer with `code`, close the connection and exit cleanly (code 0).
void refusal_case(const std::string& tag, const std::vector<uint8_t>& first_bytes, ErrorCode code,
                  const std::string& needle, int line, const std::vector<uint8_t>& hello_first = {}) {
  Agent a = start_agent(tag);
  if (!wait_port(a)) {
    agent_test::fail(__FILE__, line, tag + ": agent did not write its port file");
    wait_exit(a, 0);
    return;
  }
  int fd = connect_to(loopback(), a.port);
  CHECK(fd >= 0);
  if (!hello_first.empty()) {
    CHECK(send_all(fd, hello_first));
    Frame ok;
    CHECK(read_frame(fd, &ok) && ok.header.kind == (0x0001 | kReplyBit));
  }
  CHECK(send_all(fd, first_bytes));
  Frame f;
  if (read_frame(fd, &f)) {
    expect_error_frame(f, code, needle, line);
  } else {
    agent_test::fail(__FILE__, line, tag + ": no ERROR reply");
  }
  CHECK_MSG(peer_closed(fd), tag + ": connection left open after " + error_name(code));
  close(fd);
  const int rc = wait_exit(a);
  CHECK_MSG(rc == 0, tag + ": agent exit code " + std::to_string(rc) + " (expected 0: session over, no crash)");
}

std::vector<uint8_t> hello_bytes(uint32_t version, const std::string& token) {
  return frame_bytes(0x0001, 0x80000001u, encode(HelloRequest{version, token}));
}

// The agent's socket must be bound to 127.0.0.1: /proc/net/tcp shows it and a non-loopback address is refused.
void check_loopback_only(uint16_t port) {
  const std::vector<uint8_t> t = agent_test::read_file("/proc/net/tcp");
  if (!t.empty()) {
    char want[32];
    std::snprintf(want, sizeof want, "0100007F:%04X 00000000:0000 0A", port);  // 0A = LISTEN
    CHECK_MSG(agent_test::contains(std::string(t.begin(), t.end()), want), "not listening on 127.0.0.1:" + std::to_string(port));
    char any[32];
    std::snprintf(any, sizeof any, "00000000:%04X", port);
    CHECK_MSG(!agent_test::contains(std::string(t.begin(), t.end()), any), "listening on 0.0.0.0");
  }
  ifaddrs* ifs = nullptr;
  int tried = 0;
  if (getifaddrs(&ifs) == 0) {
    for (ifaddrs* i = ifs; i; i = i->ifa_next) {
      if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
      const uint32_t addr = reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr;
      if ((ntohl(addr) >> 24) == 127) continue;
      ++tried;
      const int fd = connect_to(addr, port);
      CHECK_MSG(fd < 0, "the agent accepted a connection on a non-loopback address");
      if (fd >= 0) close(fd);
    }
    freeifaddrs(ifs);
  }
  std::printf("loopback-only: /proc/net/tcp %s, %d non-loopback address(es) refused\n",
              t.empty() ? "unavailable" : "checked", tried);
}

void test_normal_session() {
  // A thermal root of its own (--thermal-root; a virtual phone sets CONFIDANT_THERMAL_ROOT instead).
  const std::string thermal = kTmp + "/thermal";
  ::mkdir(thermal.c_str(), 0755);
  ::mkdir((thermal + "/thermal_zone0").c_str(), 0755);
  agent_test::write_file(thermal + "/thermal_zone0/type", {'c', 'p', 'u', '-', '0', '\n'});
  agent_test::write_file(thermal + "/thermal_zone0/temp", {'3', '8', '1', '2', '5', '\n'});
  Agent a = start_agent("normal", {"--memory-budget-mb", "64", "--abi", "test-abi", "--thermal-root", thermal});
  CHECK(wait_port(a));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::vector<uint8_t> out = agent_test::read_file(a.stdout_path);
  CHECK_MSG(agent_test::contains(std::string(out.begin(), out.end()),
                                 "confidant-agent listening on 127.0.0.1:" + std::to_string(a.port) + "\n"),
            "stdout: " + std::string(out.begin(), out.end()));
  check_loopback_only(a.port);

  int fd = connect_to(loopback(), a.port);
  CHECK(fd >= 0);
  Frame f = roundtrip(fd, 0x0001, 0x90000001u, encode(HelloRequest{kProtocolVersion, kToken}));
  CHECK_EQ(f.header.kind, 0x8001);
  const HelloReply h = decode_hello_reply(f.payload);
  CHECK(h.abi == "test-abi" && h.protocol_version == 1 && h.backends.rfind("cpu(", 0) == 0 && h.cpu_threads >= 1);
  CHECK_EQ(h.memory_budget_bytes, 64ull << 20);

  expect_error_frame(roundtrip(fd, 0x0042, 2, {}), ErrorCode::UnknownCommand, "unknown command", __LINE__);
  // NOP gets no reply: two of them, then a STATS, and the next frame back is STATS's reply.
  CHECK(send_all(fd, frame_bytes(0x0010, 0, {})) && send_all(fd, frame_bytes(0x0010, 0, {})));
  CHECK_EQ(roundtrip(fd, 0x0009, 0x4E4F50u, {}).header.kind, 0x8009);
  expect_error_frame(roundtrip(fd, 0x0002, 3, {1, 2, 3}), ErrorCode::BadArgument, "LOAD_STAGE", __LINE__);
  expect_error_frame(roundtrip(fd, 0x0006, 4, {}), ErrorCode::NotLoaded, "LOAD_STAGE first", __LINE__);
  LoadStageRequest ls{kTmp + "/missing.stage", 4, 8.0f, 0x7F, 0};
  expect_error_frame(roundtrip(fd, 0x0002, 5, encode(ls)), ErrorCode::LoadFailed, "missing.stage", __LINE__);

  const std::string whole = std::string(AGENT_TEST_DATA) + "/whole.stage";
  if (!agent_test::read_file(whole).empty()) {
    ls.path = whole;
    f = roundtrip(fd, 0x0002, 6, encode(ls));
    CHECK_EQ(f.header.kind, 0x8002);
    const LoadStageReply r = decode_load_stage_reply(f.payload);
    CHECK(r.layer_start == 0 && r.layer_end == 5 && r.stage_flags == 7 && r.weight_bytes == 260032u * 4);
    CHECK_EQ(r.lora_param_count, 5u * 4 * (64 + 64 + 64 + 32 + 64 + 32 + 64 + 64 + 64 + 172 + 64 + 172 + 172 + 64));
    int32_t ids[4] = {1, 403, 407, 261};
    ForwardRequest fr;
    fr.input = Tensor::make_i32({1, 4}, ids);
    fr.flags = kForwardReturnLogits;
    f = roundtrip(fd, 0x0004, 7, encode(fr));
    CHECK_EQ(f.header.kind, 0x8004);
    const ForwardReply rep = decode_forward_reply(f.payload);
    CHECK(rep.output_kind == 1 && rep.has_logits && rep.logits.dims == (std::vector<uint32_t>{1, 4, 512}));
  }
  f = roundtrip(fd, 0x0009, 8, {});
  CHECK_EQ(f.header.kind, 0x8009);
  const StatsReply st = decode_stats_reply(f.payload);
  CHECK(st.rss_bytes > 0 && st.peak_rss_bytes >= st.rss_bytes && st.bytes_in > 0 && st.bytes_out > 0);
  CHECK_MSG(st.has_temperature && st.temperature_millicelsius == 38125 && st.temperature_zone == "cpu-0",
            "temperature from --thermal-root: " + std::to_string(st.temperature_millicelsius) + " " +
                st.temperature_zone);
  CHECK(!st.short_layout && st.primary_busy_us <= st.busy_us && st.secondary_busy_us == 0);
  f = roundtrip(fd, 0x000A, 9, {});
  CHECK_EQ(f.header.kind, 0x800A);
  CHECK_MSG(peer_closed(fd), "connection open after SHUTDOWN");
  close(fd);
  CHECK_EQ(wait_exit(a), 0);
}

void test_refusals() {
  refusal_case("wrong-token", hello_bytes(kProtocolVersion, "s3cret-token-0123456789abcdeX"), ErrorCode::AuthFailed,
               "token", __LINE__);
  refusal_case("short-token", hello_bytes(kProtocolVersion, "s3cret"), ErrorCode::AuthFailed, "token", __LINE__);
  refusal_case("wrong-version", hello_bytes(2, kToken), ErrorCode::VersionMismatch, "protocol version 2", __LINE__);
  refusal_case("before-hello", frame_bytes(0x0009, 7, {}), ErrorCode::HandshakeRequired, "HELLO", __LINE__);
  refusal_case("nop-before-hello", frame_bytes(0x0010, 0, {}), ErrorCode::HandshakeRequired, "got NOP", __LINE__);
  refusal_case("nop-with-payload", frame_bytes(0x0010, 7, {1}), ErrorCode::BadFrame, "NOP carries no payload", __LINE__,
               hello_bytes(kProtocolVersion, kToken));
  std::vector<uint8_t> bad_magic = hello_bytes(kProtocolVersion, kToken);
  bad_magic[0] = 'X';
  refusal_case("bad-magic", bad_magic, ErrorCode::BadFrame, "magic", __LINE__);
  std::vector<uint8_t> absurd = frame_bytes(0x0001, 7, {});
  absurd[12] = absurd[13] = absurd[14] = absurd[15] = 0xFF;  // 4 GiB - 1 payload
  refusal_case("absurd-length", absurd, ErrorCode::BadFrame, "exceeds", __LINE__);
  std::vector<uint8_t> flags = frame_bytes(0x0009, 7, {});
  flags[6] = 1;
  refusal_case("flags", flags, ErrorCode::BadFrame, "flags", __LINE__, hello_bytes(kProtocolVersion, kToken));
  std::vector<uint8_t> absurd_after = frame_bytes(0x0003, 7, {});
  absurd_after[15] = 0x80;  // 2 GiB payload after a good HELLO
  refusal_case("absurd-after-hello", absurd_after, ErrorCode::BadFrame, "exceeds", __LINE__,
               hello_bytes(kProtocolVersion, kToken));
}

void test_lifecycle() {
  // No token file: refuses to start (exit 2, usage), writes no port file.
  {
    Agent a = start_agent("no-token", {}, false);
    CHECK_EQ(wait_exit(a), 2);
    CHECK(agent_test::read_file(a.port_file).empty());
  }
  // Empty token file: refuses to start (exit 1).
  {
    const std::string empty = kTmp + "/empty.token";
    agent_test::write_file(empty, {});
    Agent a = start_agent("empty-token", {"--token-file", empty});
    CHECK_EQ(wait_exit(a), 1);
  }
  // Nobody connects: exits after the idle timeout (exit 3).
  {
    Agent a = start_agent("idle", {"--idle-timeout-s", "1"});
    CHECK(wait_port(a));
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_EQ(wait_exit(a, 5000), 3);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
  }
  // A host that connects, says HELLO and then goes silent (hung, or gone without closing): the agent closes the
  // session and exits after the silence timeout (exit 3), and the host sees the connection end.
  {
    Agent a = start_agent("silent", {"--host-silence-timeout-s", "1"});
    CHECK(wait_port(a));
    int fd = connect_to(loopback(), a.port);
    CHECK(send_all(fd, hello_bytes(kProtocolVersion, kToken)));
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_EQ(wait_exit(a, 5000), 3);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(4));
    close(fd);
  }
  // The host vanishes mid-frame: the session ends, no crash, and no second connection is served.
  {
    Agent a = start_agent("vanish");
    CHECK(wait_port(a));
    int fd = connect_to(loopback(), a.port);
    std::vector<uint8_t> partial = hello_bytes(kProtocolVersion, kToken);
    partial.resize(20);
    CHECK(send_all(fd, partial));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(connect_to(loopback(), a.port) < 0);  // the listener closed after the first accept
    close(fd);
    CHECK_EQ(wait_exit(a), 0);
  }
}

}  // namespace

int main() {
  signal(SIGPIPE, SIG_IGN);
  ::mkdir(AGENT_TEST_DATA, 0755);
  ::mkdir(kTmp.c_str(), 0755);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    test_normal_session();
    test_refusals();
    test_lifecycle();
  } catch (const std::exception& e) {
    agent_test::fail(__FILE__, __LINE__, std::string("exception: ") + e.what());
  }
  std::printf("took %.0f ms\n", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return agent_test::finish("agent.server");
}

// confidant-agent: the program pushed to each phone. Parses the command line, reads the session token, listens on
// 127.0.0.1, serves one host session and exits. Everything else lives in server/session/stage_model.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <unistd.h>

#include "server.h"

namespace {

using namespace confidant::agent;

const char* default_abi() {
#if defined(__aarch64__)
  return "arm64-v8a";
#elif defined(__arm__)
  return "armeabi-v7a";
#elif defined(__x86_64__)
  return "x86_64";
#elif defined(__i386__)
  return "x86";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#else
  return "unknown";
#endif
}

constexpr int kExitOk = 0;
constexpr int kExitStartup = 1;
constexpr int kExitUsage = 2;
constexpr int kExitIdle = 3;

const char* kUsage =
    "usage: confidant-agent --token-file PATH [--port N] [--port-file PATH] [--memory-budget-mb N]\n"
    "                       [--idle-timeout-s N] [--host-silence-timeout-s N] [--abi NAME] [--threads N] [--backend cpu|ref]\n"
    "                       [--opencl on|off] [--thermal-root PATH]\n"
    "  --token-file PATH      session token (required; a non-empty file, trailing newline ignored)\n"
    "  --port N               TCP port on 127.0.0.1 (default 0 = ephemeral)\n"
    "  --port-file PATH       write the bound port there (atomically: temp file + rename)\n"
    "  --memory-budget-mb N   refuse LOAD_STAGE/FORWARD beyond N MiB (default 0 = unlimited)\n"
    "  --idle-timeout-s N     exit if no host connects within N s (default 60; 0 = wait forever)\n"
    "  --host-silence-timeout-s N\n"
    "                         exit when the connected host sends no request for N s (default 900; 0 = never):\n"
    "                         a hung or vanished host must not hold the phone; a slow pipeline peer stays below it\n"
    "  --abi NAME             ABI reported in HELLO (default: the build's, e.g. arm64-v8a)\n"
    "  --threads N            CPU threads (default 0 = the cores of the fastest cluster)\n"
    "  --backend cpu|ref      primary backend: fast CPU (default) or the naive reference (debugging)\n"
    "  --opencl on|off        load OpenCL for layer splits (default on; HELLO says why when unavailable)\n"
    "  --thermal-root PATH    thermal zones STATS reads the temperature from (default: $CONFIDANT_THERMAL_ROOT,\n"
    "                         else /sys/class/thermal; a virtual phone sets the variable to its sandbox's zones)\n"
    "Serves one session and exits when it closes. Exit codes: 0 session over, 1 startup failure,\n"
    "2 usage error, 3 idle timeout (no host, or a silent one).\n";

bool parse_u64(const char* s, uint64_t max, uint64_t* out) {
  if (!s || !*s || *s == '-') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno || *end || v > max) return false;
  *out = v;
  return true;
}

bool read_token(const std::string& path, std::string* token, std::string* err) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *err = "cannot read --token-file '" + path + "'";
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  if (t.empty()) {
    *err = "--token-file '" + path + "' is empty: refusing to start without a session token";
    return false;
  }
  *token = t;
  return true;
}

bool write_port_file(const std::string& path, uint16_t port, std::string* err) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << port << "\n";
    f.flush();
    if (!f) {
      *err = "cannot write '" + tmp + "'";
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *err = "cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno);
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t port = 0, budget_mb = 0, idle_s = 60, silence_s = 900, threads = 0;
  EngineOptions engine_opts;
  std::string port_file, token_file, abi = default_abi(), thermal_root;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    bool ok = true;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    } else if (a == "--port") {
      ok = parse_u64(v, 65535, &port);
    } else if (a == "--port-file") {
      ok = v && *v;
      if (ok) port_file = v;
    } else if (a == "--token-file") {
      ok = v && *v;
      if (ok) token_file = v;
    } else if (a == "--memory-budget-mb") {
      ok = parse_u64(v, uint64_t(1) << 40, &budget_mb);
    } else if (a == "--idle-timeout-s") {
      ok = parse_u64(v, 24 * 3600 * 365, &idle_s);
    } else if (a == "--host-silence-timeout-s") {
      ok = parse_u64(v, 24 * 3600 * 365, &silence_s);
    } else if (a == "--threads") {
      ok = parse_u64(v, 1024, &threads);
      engine_opts.threads = static_cast<int>(threads);
    } else if (a == "--backend") {
      ok = v && (std::string(v) == "cpu" || std::string(v) == "ref");
      if (ok) engine_opts.backend = v;
    } else if (a == "--opencl") {
      ok = v && (std::string(v) == "on" || std::string(v) == "off");
      if (ok) engine_opts.secondary = std::string(v) == "on" ? "opencl" : "none";
    } else if (a == "--thermal-root") {
      ok = v && *v;
      if (ok) thermal_root = v;
    } else if (a == "--abi") {
      ok = v && *v;
      if (ok) abi = v;
    } else {
      std::fprintf(stderr, "confidant-agent: unknown argument '%s'\n%s", a.c_str(), kUsage);
      return kExitUsage;
    }
    if (!ok) {
      std::fprintf(stderr, "confidant-agent: %s needs a valid value\n%s", a.c_str(), kUsage);
      return kExitUsage;
    }
    ++i;
  }
  if (token_file.empty()) {
    std::fprintf(stderr, "confidant-agent: --token-file is required (the host writes the session token there)\n");
    return kExitUsage;
  }
  std::signal(SIGPIPE, SIG_IGN);  // a vanished host must end the session, not kill the process mid-write

  SessionOptions opts;
  std::string err;
  if (!read_token(token_file, &opts.token, &err)) {
    std::fprintf(stderr, "confidant-agent: %s\n", err.c_str());
    return kExitStartup;
  }
  opts.memory_budget_bytes = budget_mb * 1024 * 1024;
  opts.abi = abi;
  if (thermal_root.empty()) {
    const char* env = std::getenv("CONFIDANT_THERMAL_ROOT");
    thermal_root = env && *env ? env : kDefaultThermalRoot;
  }
  opts.thermal_root = thermal_root;

  try {
    // Backends first (OpenCL compiles its kernels here), so the agent is ready when the port file appears.
    const std::unique_ptr<Engine> engine = Engine::create(engine_opts);
    opts.engine = engine.get();
    Listener listener(static_cast<uint16_t>(port));
    if (!port_file.empty() && !write_port_file(port_file, listener.port(), &err)) {
      std::fprintf(stderr, "confidant-agent: %s\n", err.c_str());
      return kExitStartup;
    }
    std::printf("confidant-agent listening on 127.0.0.1:%u\n", unsigned(listener.port()));
    std::fflush(stdout);
    Session session(opts);
    const ServeResult r = serve_one(listener, session, static_cast<int>(idle_s), static_cast<int>(silence_s));
    if (r == ServeResult::IdleTimeout) {
      std::fprintf(stderr, "confidant-agent: no host connected within %llu s; exiting\n",
                   static_cast<unsigned long long>(idle_s));
      return kExitIdle;
    }
    if (r == ServeResult::HostSilent) {
      std::fprintf(stderr, "confidant-agent: the host sent nothing for %llu s; closing the session and exiting\n",
                   static_cast<unsigned long long>(silence_s));
      return kExitIdle;
    }
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "confidant-agent: %s\n", e.what());
    return kExitStartup;
  }
}

// The agent's TCP side: a listener bound to 127.0.0.1 only, and a loop that serves exactly one connection,
// reading frames (header checks -> BAD_FRAME) and passing them to a Session. Not the command logic (session.h).
#pragma once
#include <cstdint>
#include <string>

#include "session.h"

namespace confidant::agent {

class Listener {
 public:
  // Binds 127.0.0.1:port (0 = an ephemeral port) and listens; throws std::runtime_error with the reason.
  explicit Listener(uint16_t port);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  uint16_t port() const { return port_; }
  // Waits up to timeout_s (0 = forever) for one connection; returns its socket, or -1 on timeout.
  // The listening socket is closed afterwards either way: an agent serves one session.
  int accept_one(int timeout_s);

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

enum class ServeResult { SessionEnded, Shutdown, IdleTimeout, HostSilent };

// Serves the connection until the host closes it, a closing error is sent, SHUTDOWN, or (silence_timeout_s > 0)
// no new request starts within silence_timeout_s: a host that connected and then hung or vanished without closing
// must not hold the phone's agent (and its memory) forever. Closes the socket.
ServeResult serve_connection(int fd, Session& session, int silence_timeout_s = 0);

// accept_one + serve_connection.
ServeResult serve_one(Listener& listener, Session& session, int idle_timeout_s, int silence_timeout_s = 0);

}  // namespace confidant::agent

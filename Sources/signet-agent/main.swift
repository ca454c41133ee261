#if canImport(Glibc)
import Glibc
#endif
import SignetAgentCore

exit(AgentMain.run())

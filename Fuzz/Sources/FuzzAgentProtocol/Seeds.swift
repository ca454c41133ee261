// The agent protocol's seed corpus: one body of every request and every response, from
// `ProtocolSamples` (Tests/SignetProtocolSamples), which the protocol tests use too.
// `FuzzAgentProtocol --write-seeds DIR` writes them; Fuzz/corpus/agent-protocol/ holds its output.
#if canImport(Glibc)
import Glibc
#endif
import SignetAgentProtocol
import SignetCore
import SignetProtocolSamples

/// Writes each body (the frame without its length prefix) to `directory`/request-NN and response-NN.
func writeSeeds(to directory: String) {
    func write(_ frame: WireBuffer, _ name: String) {
        let body = Array(frame.bytes.dropFirst(4))
        let file = open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(file >= 0 && body.withUnsafeBytes { Glibc.write(file, $0.baseAddress, $0.count) } == body.count, "cannot write \(directory)/\(name)")
        close(file)
    }
    for (index, request) in ProtocolSamples.everyRequest.enumerated() { write(AgentFrame.encode(request, id: UInt32(index) + 1), "request-\(request.name)-\(index)") }
    for (index, response) in ProtocolSamples.everyResponse.enumerated() { write(AgentFrame.encode(response, id: UInt32(index) + 1), "response-\(index)") }
}

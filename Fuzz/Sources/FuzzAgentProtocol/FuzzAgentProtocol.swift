// The agent protocol decoder: what a hostile client sends the agent (requests) and what
// a hostile agent socket sends the client (responses).
import FuzzDriver
import SignetAgentProtocol

/// Decodes the input as a request body and as a response body; what decodes must encode
/// to a frame that decodes to the same message.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAgentProtocol(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let body = UnsafeRawBufferPointer(start: data, count: size)
    if size >= 4 { _ = try? AgentFrame.bodyLength(UnsafeRawBufferPointer(rebasing: body[0..<4])) }
    _ = AgentFrame.header(body)
    if let (id, request) = try? AgentFrame.decodeRequest(body) {
        let frame = AgentFrame.encode(request, id: id)
        frame.withUnsafeBytes { bytes in
            let again = try? AgentFrame.decodeRequest(UnsafeRawBufferPointer(rebasing: bytes[4...]))
            precondition(again?.id == id, "a decoded request does not decode after encoding")
            precondition(Array(UnsafeRawBufferPointer(rebasing: bytes[4...])) == Array(body), "a request re-encodes differently")
        }
    }
    if let (id, response) = try? AgentFrame.decodeResponse(body) {
        let frame = AgentFrame.encode(response, id: id)
        frame.withUnsafeBytes { bytes in
            let again = try? AgentFrame.decodeResponse(UnsafeRawBufferPointer(rebasing: bytes[4...]))
            precondition(again?.id == id && again?.response == response, "a decoded response does not decode to itself after encoding")
        }
    }
    return 0
}

@main
enum Main {
    static func main() {
        if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--write-seeds" { writeSeeds(to: CommandLine.arguments[2]); return }
        runFuzzer(fuzzAgentProtocol)
    }
}

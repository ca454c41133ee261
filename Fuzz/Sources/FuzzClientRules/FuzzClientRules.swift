// The client rules parser (`clients` files, docs/clients.md): the words of a line, quotes and comments,
// `program=`, `script=`, `key=` (a PKCS#11 URI, id:HEX, label:TEXT), `operations=`; then the file as the agent
// loads it (`AgentSettings.load`, from the user's `clients` in a directory of the fuzzer's own), and the
// `signet policy` report of it through the protocol.
#if canImport(Glibc)
import Glibc
#endif
import FuzzDriver
import SignetAgentCore
import SignetAgentProtocol
import SignetCore

private let directory = temporaryDirectory("/tmp/signet-fuzz-clients-XXXXXX")
private let paths = SignetPaths(environment: ["HOME": directory + "/home"])
private let prepared: Void = { _ = FileIO.makeDirectories(paths.config, mode: 0o700) }()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClientRules(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    prepared
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let report = ClientRulesParser.report(text, file: "fuzz")
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
    let file = report.files[0]
    precondition(report.rules.count <= lines, "more rules than lines: \(report.rules.count) > \(lines)")
    precondition(file.problems.isEmpty || report.rules.isEmpty, "a file with problems has rules in force")
    for rule in report.rules {
        precondition(rule.line >= 1 && Int(rule.line) <= lines, "a rule's line \(rule.line) is not one of the \(lines)")
        precondition(["allow", "confirm", "deny"].contains(rule.action), "action \(rule.action)")
        precondition(rule.program == "*" || rule.program.hasPrefix("/"), "program \(rule.program)")
    }
    for problem in file.problems { precondition(problem.hasPrefix("fuzz:"), "a problem without its line: \(problem)") }

    // What `signet policy` gets: the report through the protocol, when it fits in a frame.
    let frame = AgentFrame.encode(AgentResponse.policy(report), id: 7).bytes
    if frame.count <= AgentProtocol.maximumFrame + 4 {
        let decoded = frame.dropFirst(4).withUnsafeBytes { try? AgentFrame.decodeResponse($0) }
        precondition(decoded?.id == 7 && decoded?.response == .policy(report), "the policy report did not survive the protocol")
    }

    // The same bytes as the user's clients file, loaded by the agent (ownership and mode checked, then parsed).
    let path = paths.config + "/clients"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(fd >= 0, "cannot write \(path)")
    if size > 0 { precondition(write(fd, data, size) == size) }
    close(fd)
    _ = AgentSettings.load(paths: paths, systemDirectory: directory + "/etc").problems.count
    return 0
}

@main
enum Main {
    static func main() { runFuzzer(fuzzClientRules) }
}

import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetTestSupport
import Synchronization
import Testing

/// Issue 24's prompt findings, end to end against a real agent: text from tokens reaches the terminal
/// escaped (#7), a prompt's words cannot be forged by a program's path (#5), a prompt never opens on a
/// terminal that has become another user's (#4), and confirm prompts take turns and grant exactly the
/// button chosen, with the real pinentry programs (#3).
@Suite("Prompts and messages grant and show exactly what they say", .serialized)
struct PromptSafetyTests {
    /// Whether `text` holds a raw control that a terminal acts on (ESC, CR, C1, bidi), newlines aside.
    static func holdsRawControls(_ text: String) -> Bool {
        text.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) || (0x202A...0x202E).contains($0.value) }
    }

    @Test("A token label with a newline in the agent's \"several tokens match\" error is printed as \\n, on the error's own line")
    func rawLabelInAmbiguity() throws {
        let agent = try AgentFixture()
        try agent.start()
        try agent.makeToken("i\nLayer 1: good signature")
        try agent.makeToken("Second")
        let unlock = try agent.signet(["unlock", "--code-fd", "0"], stdin: "123456\n")
        #expect(unlock.status != 0)
        let lines = unlock.errors.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
        #expect(lines.count == 1, "the label's newline made a line of its own: \(lines)")
        #expect(!lines.contains { $0.hasPrefix("Layer 1") }, "\(lines)")
        #expect(unlock.errors.contains(#"i\nLayer 1: good signature"#), "\(unlock.errors)")
        #expect(unlock.errors.contains("tokens match"), "\(unlock.errors)")
        #expect(!Self.holdsRawControls(unlock.errors))

        // The same through the protocol: the agent's message itself is one line, for every client.
        let client = try agent.client()
        do throws(AgentClientError) {
            _ = try client.call(.unlock(token: nil, code: SharedSecret(SecretBytes(copying: Array("123456".utf8))), finalTry: false))
            Issue.record("two tokens, and no token named: the unlock succeeded")
        } catch {
            guard case .agent(let code, let message) = error else { Issue.record("\(error)"); return }
            #expect(code == .tokenAmbiguous)
            #expect(!message.contains("\n") && message.contains(#"i\nLayer 1"#), "\(message)")
        }
    }
}

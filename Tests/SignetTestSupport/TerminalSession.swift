import Foundation

/// A program running in a real terminal: a tmux server of its own (its own socket), one
/// detached session, the screen read back with `capture-pane` and keys typed with `send-keys`.
/// For programs that only work interactively (Debian 12's neomutt does no cryptography in batch mode).
public final class TerminalSession {
    private let socket: String
    private let environment: [String: String]

    /// Starts `command` (a shell command line) in a 100×40 terminal with `environment`.
    public init(_ command: String, socketDirectory: String, environment: [String: String]) throws {
        socket = socketDirectory + "/tmux.sock"
        self.environment = environment
        try tmux(["new-session", "-d", "-s", "test", "-x", "100", "-y", "40", command])
    }

    deinit { _ = try? Run.command("tmux", ["-S", socket, "kill-server"], environment: environment, timeout: 10) }

    /// The text on the screen now (empty once the program has ended).
    public var screen: String {
        (try? Run.command("tmux", ["-S", socket, "capture-pane", "-p", "-t", "test"], environment: environment, timeout: 10).output) ?? ""
    }

    /// Types `keys` (tmux key names: "Enter", "y", …).
    public func send(_ keys: String...) throws { try tmux(["send-keys", "-t", "test"] + keys) }

    /// Waits until the screen shows `text`; throws with the screen when it does not within `timeout`.
    @discardableResult
    public func waitFor(_ text: String, timeout: Duration = .seconds(20)) throws -> String {
        var last = ""
        let shown = eventually(timeout: timeout) {
            last = screen
            return last.contains(text)
        }
        guard shown else { throw TestFailure("the terminal never showed \"\(text)\"; it shows:\n\(last)") }
        return last
    }

    private func tmux(_ arguments: [String]) throws {
        let result = try Run.command("tmux", ["-S", socket] + arguments, environment: environment, timeout: 10)
        guard result.status == 0 else { throw TestFailure("tmux \(arguments.first ?? "") failed: \(result.errors)") }
    }
}

import Foundation

/// A program running in a real terminal: a tmux server of its own (its own socket), one
/// detached session, the screen read back with `capture-pane` and keys typed with `send-keys`.
/// For programs that only work interactively (Debian 12's neomutt does no cryptography in batch mode).
public final class TerminalSession {
    private let socket: String
    private let environment: [String: String]
    private let directory: String
    /// The tmux server and the program in the pane, killed at the end: a program stuck at a prompt
    /// ignores the SIGHUP that `kill-server` sends, and the server waits for it.
    private var processes: [pid_t] = []

    /// Starts `command` (a shell command line that names a file in `socketDirectory`) in a 100×40
    /// terminal with `environment`.
    public init(_ command: String, socketDirectory: String, environment: [String: String]) throws {
        socket = socketDirectory + "/tmux.sock"
        directory = socketDirectory
        self.environment = environment
        try tmux(["new-session", "-d", "-s", "test", "-x", "100", "-y", "40", command])
        let ids = try Run.command("tmux", ["-S", socket, "display-message", "-p", "-t", "test", "#{pane_pid} #{pid}"],
                                  environment: environment, timeout: 10).output
        processes = ids.split(whereSeparator: \.isWhitespace).compactMap { pid_t($0) }
    }

    deinit {
        // Only while they are still ours: both command lines name the session's directory (a pid may be reused).
        for pid in processes {
            guard let arguments = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")),
                  String(decoding: arguments, as: UTF8.self).contains(directory) else { continue }
            kill(pid, SIGKILL)
        }
        unlink(socket)
    }

    /// The pane's terminal, `/dev/pts/N`.
    public var tty: String {
        get throws {
            let result = try Run.command("tmux", ["-S", socket, "display-message", "-p", "-t", "test", "#{pane_tty}"], environment: environment, timeout: 10)
            guard result.status == 0 else { throw TestFailure("tmux display-message failed: \(result.errors)") }
            return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// The text on the screen now (empty once the program has ended).
    public var screen: String {
        (try? Run.command("tmux", ["-S", socket, "capture-pane", "-p", "-t", "test"], environment: environment, timeout: 10).output) ?? ""
    }

    /// Types `keys` (tmux key names: "Enter", "y", …).
    public func send(_ keys: String...) throws { try tmux(["send-keys", "-t", "test"] + keys) }

    /// Waits until the screen shows `text`; throws with the screen when it does not within `timeout`.
    @discardableResult
    public func waitFor(_ text: String, timeout: Duration = .seconds(60)) throws -> String {
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

import ArgumentParser
import SignetAgentProtocol
import SignetCore

/// `signet policy`: the per-client rules the agent applies (`docs/clients.md`), each with its file and
/// line, the files it refused and why, and the programs that used keys recently.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "List the rules saying which programs may use which keys, and the programs seen recently.",
        discussion: """
        Rules are in /etc/signet/clients (the administrator's) and ~/.config/signet/clients (yours); \
        see docs/clients.md. In each file the first matching rule decides, and the stricter of the two \
        files' decisions wins. A file that is writable by others, or has an error, is refused and every \
        key use is denied until it is fixed. `signet agent reload` makes the agent read them again.
        """
    )

    @OptionGroup var output: OutputOptions

    struct Listing: Codable {
        struct File: Codable { var path: String; var administrator: Bool; var state: String; var problems: [String] }
        struct Rule: Codable {
            var file: String; var line: Int; var action: String; var program: String; var script: String?; var key: String; var operations: [String]
        }
        struct Use: Codable {
            var program: String; var pid: Int; var key: String; var operation: String; var decision: String; var time: String; var count: Int
        }
        var files: [File]
        var rules: [Rule]
        var recent: [Use]
    }

    func run() throws {
        guard case .policy(let report) = try Agent.call(.policy) else { throw CLIError(description: "unexpected answer from the agent") }
        let listing = Listing(
            files: report.files.map { .init(path: $0.path, administrator: $0.administrator, state: PolicyCommand.word($0.state), problems: $0.problems) },
            rules: report.rules.map { .init(file: $0.file, line: Int($0.line), action: $0.action, program: $0.program, script: $0.script,
                                            key: $0.key, operations: $0.operations) },
            recent: report.recent.map { .init(program: $0.program, pid: Int($0.pid), key: $0.key, operation: $0.operation, decision: $0.decision,
                                              time: $0.time, count: Int($0.count)) })
        if output.json { return try JSONOutput.print(listing) }
        print(PolicyCommand.text(report))
    }

    static func word(_ state: PolicyReport.File.State) -> String {
        switch state {
        case .absent: "absent"
        case .loaded: "loaded"
        case .refused: "refused"
        }
    }

    /// The listing as text; what the agent reports is escaped (`Console.safe`): paths and labels are the user's.
    static func text(_ report: PolicyReport) -> String {
        var lines: [String] = ["Files:"]
        for file in report.files {
            let whose = file.administrator ? "administrator's" : "yours"
            switch file.state {
            case .absent: lines.append("  \(file.path) (\(whose)): absent")
            case .loaded: lines.append("  \(file.path) (\(whose)): \(report.rules.filter { $0.file == file.path }.count) rule(s)")
            case .refused:
                lines.append("  \(file.path) (\(whose)): REFUSED, so every key use is denied until it is fixed:")
                for problem in file.problems { lines.append("    \(problem)") }
            }
        }
        lines.append("")
        if report.rules.isEmpty {
            lines.append(report.files.contains { $0.state == .refused } ? "Rules: none in effect."
                         : "Rules: none, so every program of yours may use every key (docs/clients.md says how to write some).")
        } else {
            lines.append("Rules (in each file the first that matches decides; the stricter file wins; no match: allow):")
            for rule in report.rules {
                let program = rule.program + (rule.script.map { " " + $0 } ?? "")
                let operations = rule.operations.count == 3 ? "all" : rule.operations.joined(separator: ",")
                lines.append("  \(rule.file):\(rule.line)  \(rule.action)  \(program)  key \(rule.key)  \(operations)")
            }
        }
        lines.append("")
        if report.recent.isEmpty {
            lines.append("Programs seen recently: none since the agent started.")
        } else {
            lines.append("Programs seen recently (latest first):")
            for use in report.recent {
                let time = String(use.time.map { $0 == "T" ? " " : $0 }).replacing("Z", with: " UTC")
                let times = use.count == 1 ? "" : " (\(use.count) times)"
                lines.append("  \(time)  \(use.program) (pid \(use.pid))  \(use.operation)  key \(use.key)  \(use.decision)\(times)")
            }
        }
        return lines.map(Console.safe).joined(separator: "\n")
    }
}

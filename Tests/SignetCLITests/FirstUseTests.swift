import ArgumentParser
import Foundation
@testable import SignetCLI
import SignetTestSupport
import Testing

/// What new users ran into, each reproduced through the `signet` binary (or its help texts).
@Suite("First use: messages a new user meets")
struct FirstUseTests {
    let base = try! CLITests()
    var signet: String { base.signet }

    func run(_ arguments: [String], stdin: String? = nil) throws -> Run.Result {
        try Run.command(signet, arguments, stdin: stdin.map { Data($0.utf8) }, environment: base.environment, timeout: 60)
    }

    /// Every command in the tree, with its name path.
    static func commands(_ type: any ParsableCommand.Type = SignetCommand.self, path: [String] = []) -> [(String, any ParsableCommand.Type)] {
        let here = [(path.joined(separator: " "), type)]
        return here + type.configuration.subcommands.flatMap { sub in commands(sub, path: path + [sub.configuration.commandName ?? "?"]) }
    }

    @Test("No option's help says its default twice (once in the text and once from the parser)")
    func defaultsOnce() throws {
        for (name, type) in Self.commands() {
            let help = type.helpMessage(columns: 400)
            for line in help.split(separator: "\n") where line.hasPrefix("  -") {
                let count = line.components(separatedBy: "default").count - 1
                #expect(count <= 1, "signet \(name): \(line)")
            }
        }
    }
}

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

    @Test("A mistyped command gets the nearest command suggested and a non-zero exit")
    func typo() throws {
        let sing = try run(["sing"])
        #expect(sing.status != 0)
        #expect(sing.errors.contains("Unknown command 'sing'. Did you mean 'sign'?"), "\(sing.errors)")
        let nested = try run(["cert", "lst"])
        #expect(nested.status != 0)
        #expect(nested.errors.contains("Did you mean 'cert list'?"), "\(nested.errors)")
        let nothingNear = try run(["xyzzy"])
        #expect(nothingNear.status != 0)
        #expect(nothingNear.errors.contains("Unknown command 'xyzzy'.") && !nothingNear.errors.contains("Did you mean"))
        // Real commands and help still work.
        #expect(try run(["help", "sign"]).status == 0)
        #expect(try run(["version"]).status == 0)
    }

    @Test("`signet status` with no token suggests making a software token, as `signet tokens` does")
    func statusWithoutToken() throws {
        let status = try run(["status"])
        #expect(status.status == 0, "\(status.errors)")
        #expect(status.output.contains("signet token init --software --label NAME"), "\(status.output)")
    }

    @Test("token init refuses a code of the wrong length right after it is typed, before asking for it again, and says the lengths allowed")
    func codeLengthAtOnce() throws {
        // On descriptors: a 1-byte access code, then a 1-byte SO code.
        let short = try run(["token", "init", "--software", "--label", "L", "--code-fd", "0", "--so-code-fd", "0"], stdin: "1\nso-code-99\n")
        #expect(short.status == 1)
        #expect(short.errors.contains("the access code must be 4 to 255 bytes long"), "\(short.errors)")
        let shortSO = try run(["token", "init", "--software", "--label", "L", "--code-fd", "0", "--so-code-fd", "0"], stdin: "1234-abcd\nx\n")
        #expect(shortSO.status == 1)
        #expect(shortSO.errors.contains("the administrator (SO) code must be 4 to 255 bytes long"), "\(shortSO.errors)")
        #expect(!(try base.tokens().contains { $0["label"] as? String == "L" }))

        // On the terminal: refused after the first entry, not after the second.
        let directory = base.home.path
        let terminal = try TerminalSession("cd '\(directory)' && '\(signet)' token init --software --label T; echo \"exit=$?\"; sleep 60",
                                           socketDirectory: directory, environment: base.environment)
        try terminal.waitFor("New access code for T:")
        try terminal.send("1", "Enter")
        let screen = try terminal.waitFor("exit=1")
        #expect(screen.contains("the access code must be 4 to 255 bytes long"), "\(screen)")
        #expect(!screen.contains("Type it again"), "\(screen)")

        let soDirectory = directory + "/so-terminal"
        try FileManager.default.createDirectory(atPath: soDirectory, withIntermediateDirectories: true)
        let so = try TerminalSession("cd '\(soDirectory)' && '\(signet)' token init --software --label T; echo \"exit=$?\"; sleep 60",
                                     socketDirectory: soDirectory, environment: base.environment)
        try so.waitFor("New access code for T:")
        try so.send("1234-abcd", "Enter")
        try so.waitFor("Type it again:")
        try so.send("1234-abcd", "Enter")
        try so.waitFor("New administrator (SO) code:")
        try so.send("x", "Enter")
        let soScreen = try so.waitFor("exit=1")
        #expect(soScreen.contains("the administrator (SO) code must be 4 to 255 bytes long"), "\(soScreen)")
        #expect(soScreen.components(separatedBy: "Type it again").count == 2, "asked again only for the access code: \(soScreen)")
    }
}

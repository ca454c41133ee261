import ArgumentParser

/// A short way into the four mail commands, which a mail program starts once per message.
///
/// ArgumentParser spends about 1.5 ms of a 10 ms `signet sign` before the command runs (it reflects
/// over every option of the command tree and builds the parser for its completion-script option).
/// For `sign`, `verify`, `encrypt` and `decrypt` written in the plain forms mail programs use
/// (`--name value`, `--name=value`, `-o value`, `-q`, each option at most once), this reads the
/// arguments itself and fills in the same command that ArgumentParser would have made; anything
/// else (help, an unknown or repeated option, a value that starts with `-`, a bad number) returns
/// nil and goes through ArgumentParser, which then also gives its usual messages.
/// `QuickArgumentsTests` checks that both ways make the same command for each form.
enum QuickArguments {
    /// The validated command for `arguments` (without the program name), or nil to leave it to
    /// ArgumentParser (which also reports a command that does not validate, with its usage line).
    static func command(_ arguments: [String]) -> ParsableCommand? {
        guard let name = arguments.first else { return nil }
        let rest = arguments.dropFirst()
        let command: ParsableCommand?
        switch name {
        case "sign": command = SignCommand.quick(rest)
        case "verify": command = VerifyCommand.quick(rest)
        case "encrypt": command = EncryptCommand.quick(rest)
        case "decrypt": command = DecryptCommand.quick(rest)
        default: command = nil
        }
        guard var command, (try? command.validate()) != nil else { return nil }
        return command
    }

    /// Runs the command as `ParsableCommand.main` does (run, then exit with the error's status);
    /// false when the arguments are not in a quick form.
    static func run(_ arguments: [String]) -> Bool {
        guard var command = command(arguments) else { return false }
        do {
            try command.run()
        } catch {
            SignetCommand.exit(reporting: error)
        }
        return true
    }

    /// The arguments read against one command's options. (Plain arrays: each generic type a
    /// program uses for the first time costs it some microseconds to set up.)
    struct Parsed {
        private(set) var values: [(name: String, value: String)] = []
        private(set) var flags: [String] = []
        private(set) var positionals: [String] = []

        /// - Parameters:
        ///   - options: long names that take a value; `repeatable` ones may come more than once.
        ///   - shorts: `-x` forms and the long name each stands for.
        ///   - positionals: whether bare arguments are accepted.
        init?(_ arguments: ArraySlice<String>, options: [String], repeatable: [String] = [], flags flagNames: [String],
              shorts: [(String, String)] = [], positionals allowPositionals: Bool = false) {
            var index = arguments.startIndex
            while index < arguments.endIndex {
                let argument = arguments[index]
                index += 1
                var name: String
                var inlineValue: String?
                if argument.hasPrefix("--") {
                    let body = argument.dropFirst(2)
                    if let equals = body.firstIndex(of: "=") {
                        name = String(body[..<equals])
                        inlineValue = String(body[body.index(after: equals)...])
                    } else {
                        name = String(body)
                    }
                } else if argument.hasPrefix("-"), argument != "-" {
                    guard let long = shorts.first(where: { $0.0 == argument })?.1 else { return nil }
                    name = long
                } else {
                    guard allowPositionals else { return nil }
                    positionals.append(argument)
                    continue
                }
                if flagNames.contains(name) {
                    guard inlineValue == nil, !flags.contains(name) else { return nil }
                    flags.append(name)
                } else if options.contains(name) {
                    guard value(name) == nil || repeatable.contains(name) else { return nil }
                    let value: String
                    if let inlineValue {
                        value = inlineValue
                    } else {
                        guard index < arguments.endIndex else { return nil }
                        value = arguments[index]
                        index += 1
                    }
                    guard value == "-" || !value.hasPrefix("-") else { return nil }
                    values.append((name, value))
                } else {
                    return nil
                }
            }
        }

        func value(_ name: String) -> String? { values.last { $0.name == name }?.value }
        func all(_ name: String) -> [String] { values.filter { $0.name == name }.map(\.value) }
        func flag(_ name: String) -> Bool { flags.contains(name) }

        /// The `--code-fd` options; nil (not quick) when the number does not parse.
        func unlockOptions() -> UnlockOptions? {
            var unlock = UnlockOptions()
            unlock.codeFD = nil
            if let text = value("code-fd") {
                guard let fd = Int32(text) else { return nil }
                unlock.codeFD = fd
            }
            return unlock
        }

        static let unlockNames = ["code-fd"]
        static let trustOptionNames = ["trust", "at", "crl"]
        static let trustFlagNames = ["fetch-crl", "allow-sha1", "offline"]

        func trustOptions() -> TrustOptions {
            var trust = TrustOptions()
            trust.trust = all("trust")
            trust.at = value("at")
            trust.crl = all("crl")
            trust.fetchCRL = flag("fetch-crl")
            trust.allowSHA1 = flag("allow-sha1")
            trust.offline = flag("offline")
            return trust
        }
    }
}

extension SignCommand {
    static func quick(_ arguments: ArraySlice<String>) -> SignCommand? {
        guard let parsed = QuickArguments.Parsed(arguments, options: ["in", "out", "digest", "cert", "from"] + QuickArguments.Parsed.unlockNames,
                                                 flags: ["opaque", "signature-only", "pss", "binary", "quiet"], shorts: [("-o", "out"), ("-q", "quiet")]),
              let unlock = parsed.unlockOptions() else { return nil }
        var command = SignCommand()
        command.in = parsed.value("in")
        command.out = parsed.value("out")
        command.opaque = parsed.flag("opaque")
        command.signatureOnly = parsed.flag("signature-only")
        command.digest = parsed.value("digest") ?? "sha256"
        command.pss = parsed.flag("pss")
        command.cert = parsed.value("cert")
        command.from = parsed.value("from")
        command.binary = parsed.flag("binary")
        command.quiet = parsed.flag("quiet")
        command.unlock = unlock
        return command
    }
}

extension VerifyCommand {
    static func quick(_ arguments: ArraySlice<String>) -> VerifyCommand? {
        typealias P = QuickArguments.Parsed
        guard let parsed = P(arguments, options: ["in", "signature", "content", "out"] + P.trustOptionNames + P.unlockNames,
                             repeatable: ["trust", "crl"], flags: P.trustFlagNames + ["json"], shorts: [("-o", "out")]),
              let unlock = parsed.unlockOptions() else { return nil }
        var command = VerifyCommand()
        command.in = parsed.value("in")
        command.signature = parsed.value("signature")
        command.content = parsed.value("content")
        command.out = parsed.value("out")
        command.trust = parsed.trustOptions()
        var output = OutputOptions()
        output.json = parsed.flag("json")
        command.output = output
        command.unlock = unlock
        return command
    }
}

extension EncryptCommand {
    static func quick(_ arguments: ArraySlice<String>) -> EncryptCommand? {
        guard let parsed = QuickArguments.Parsed(arguments, options: ["to", "in", "out", "cipher", "self"], repeatable: ["to"],
                                                 flags: ["der", "oaep", "quiet", "offline", "refresh"], shorts: [("-o", "out"), ("-q", "quiet")], positionals: true)
        else { return nil }
        var command = EncryptCommand()
        command.to = parsed.all("to")
        command.recipients = parsed.positionals
        command.der = parsed.flag("der")
        command.in = parsed.value("in")
        command.out = parsed.value("out")
        command.cipher = parsed.value("cipher") ?? "aes256-cbc"
        command.oaep = parsed.flag("oaep")
        command.ownCertificate = parsed.value("self")
        command.quiet = parsed.flag("quiet")
        command.offline = parsed.flag("offline")
        command.refresh = parsed.flag("refresh")
        return command
    }
}

extension DecryptCommand {
    static func quick(_ arguments: ArraySlice<String>) -> DecryptCommand? {
        typealias P = QuickArguments.Parsed
        guard let parsed = P(arguments, options: ["in", "out"] + P.trustOptionNames + P.unlockNames, repeatable: ["trust", "crl"],
                             flags: P.trustFlagNames, shorts: [("-o", "out")]),
              let unlock = parsed.unlockOptions() else { return nil }
        var command = DecryptCommand()
        command.in = parsed.value("in")
        command.out = parsed.value("out")
        command.trust = parsed.trustOptions()
        command.unlock = unlock
        return command
    }
}

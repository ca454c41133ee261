#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import SignetCore
import SignetMail

/// `signet setup`: registers Signet's PKCS#11 front end (`libsignet-pkcs11.so`) with the user's programs,
/// or (`--undo`) removes what it registered. The work is in `Setup`; this prints one line per target.
struct SetupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Register Signet's PKCS#11 module with p11-kit, Thunderbird, Firefox, Chromium and gpgsm (--undo removes it).",
        discussion: """
        Finds libsignet-pkcs11.so ($SIGNET_FRONTEND_MODULE, else beside the signet program, else ../lib/signet/ beside it, else /usr/lib/x86_64-linux-gnu/pkcs11/) and registers it with p11-kit (~/.config/pkcs11/modules/signet.module), in every Thunderbird and Firefox profile a profiles.ini names and its program uses ($XDG_CONFIG_HOME/mozilla/firefox, ~/.mozilla/firefox, ~/.thunderbird, and the snap and flatpak ones) and ~/.pki/nssdb (Chromium, Evolution) through modutil, and for gpgsm through gnupg-pkcs11-scd (~/.gnupg/gnupg-pkcs11-scd.conf, and scdaemon-program in gpg-agent.conf).

        A program with no profile yet gets a line saying so: start it once, then run setup again. Running it again changes nothing. A profile whose program is running is left as it is (quit the program, then run setup again); the other targets are still done, and the exit status is 1. The lines added to GnuPG's files are marked, and --undo removes exactly those; a scdaemon-program of your own is never replaced.
        """
    )

    @Flag(name: .long, help: "Remove everything `signet setup` registered.")
    var undo = false

    @Flag(name: .long, help: "Print what would be done; change nothing.")
    var dryRun = false

    @Option(name: .long, help: ArgumentHelp(
        "Only write p11-kit's system-wide module file for every user, e.g. /usr/share/p11-kit/modules/signet.module ('-': print it); with --undo, remove it.",
        valueName: "path"))
    var systemFile: String?

    func run() throws {
        let environment = ProcessEnvironment.all()
        let setup = Setup(environment: environment, dryRun: dryRun)
        if !dryRun && !(systemFile == "-" && !undo), let refusal = SetupLock.acquire(SignetPaths(environment: environment).state + "/setup.lock") {
            throw CLIError(.failure, refusal)
        }
        let outcomes: [Setup.Outcome]
        if let systemFile {
            if systemFile == "-" && !undo {
                Console.out(Setup.moduleFileText(module: try FrontEndModule.locate(), systemWide: true))
                return
            }
            outcomes = [undo ? setup.removeSystemFile(systemFile) : setup.writeSystemFile(systemFile, module: try FrontEndModule.locate())]
        } else {
            outcomes = undo ? setup.removeAll() : setup.registerAll(module: try FrontEndModule.locate())
        }
        for outcome in outcomes { print(Console.safe("\(outcome.target): \(outcome.result)")) }
        let failed = outcomes.filter(\.failed).count
        guard failed == 0 else {
            throw CLIError(.failure, "\(failed) of \(outcomes.count) targets \(failed == 1 ? "was" : "were") left as \(failed == 1 ? "it was" : "they were") (see above); "
                + "run `signet setup\(undo ? " --undo" : "")` again once that is dealt with.")
        }
    }
}

/// Where Signet's PKCS#11 front end is.
enum FrontEndModule {
    static let fileName = "libsignet-pkcs11.so"
    /// Where a Debian package installs it: p11-kit's module directory.
    static let systemPath = "/usr/lib/x86_64-linux-gnu/pkcs11/" + fileName

    /// The module's absolute path: `$SIGNET_FRONTEND_MODULE` when set (and then only it), else the first that
    /// exists of `libsignet-pkcs11.so` beside the running `signet`, `../lib/signet/` beside it, `systemPath`.
    /// - Throws: `CLIError` naming the places looked at when there is none.
    static func locate(environment: [String: String] = ProcessEnvironment.all()) throws(CLIError) -> String {
        if let explicit = environment["SIGNET_FRONTEND_MODULE"], !explicit.isEmpty {
            let path = absolute(explicit)
            guard isFile(path) else {
                throw CLIError(.failure, "SIGNET_FRONTEND_MODULE is \(path), which is not a file. Point it at libsignet-pkcs11.so, or unset it.")
            }
            return path
        }
        var candidates: [String] = []
        if let program = executablePath() {
            let directory = String(program[..<(program.lastIndex(of: "/") ?? program.startIndex)])
            let parent = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
            candidates += [directory + "/" + fileName, parent + "/lib/signet/" + fileName]
        }
        candidates.append(systemPath)
        guard let found = candidates.first(where: isFile) else {
            throw CLIError(.failure, "Signet's PKCS#11 module (\(fileName)) is not installed: looked for \(candidates.joined(separator: ", ")). "
                + "Build it (`swift build --product signet-pkcs11`) or install it, or set SIGNET_FRONTEND_MODULE to its path.")
        }
        return found
    }

    private static func executablePath() -> String? {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = buffer.withUnsafeMutableBytes { readlink("/proc/self/exe", $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count - 1) }
        return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : nil
    }

    private static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        guard let directory = getcwd(nil, 0) else { return path }
        defer { free(directory) }
        return String(cString: directory) + "/" + path
    }

    private static func isFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
    }
}

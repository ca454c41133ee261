#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import SignetCore
import SignetMail
import SignetOpenSSL
import SignetSetup

/// `signet setup`: registers Signet's PKCS#11 front end (`libsignet-pkcs11.so`) with the user's programs,
/// or (`--undo`) removes what it registered. The work is in `Setup`; this prints one line per target.
struct SetupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Register Signet's PKCS#11 module with p11-kit, Thunderbird, Firefox, Chromium and gpgsm (--undo removes it).",
        discussion: """
        Finds libsignet-pkcs11.so ($SIGNET_FRONTEND_MODULE, else beside the signet program, else ../lib/signet/ beside it, else p11-kit's module directory, /usr/lib/<multiarch>/pkcs11/) and registers it with p11-kit (~/.config/pkcs11/modules/signet.module), in every Thunderbird and Firefox profile a profiles.ini names and its program uses ($XDG_CONFIG_HOME/mozilla/firefox, ~/.mozilla/firefox, ~/.thunderbird, and the snap and flatpak ones) and ~/.pki/nssdb (Chromium, Evolution) through modutil, and for gpgsm through gnupg-pkcs11-scd (~/.gnupg/gnupg-pkcs11-scd.conf, and scdaemon-program in gpg-agent.conf).

        A program with no profile yet gets a line saying so: start it once, then run setup again. Running it again changes nothing. A profile whose program is running is left as it is (quit the program, then run setup again); the other targets are still done, and the exit status is 1. The lines added to GnuPG's files are marked, and --undo removes exactly those; a scdaemon-program of your own is never replaced.

        --trust-roots adds the roots in Signet's trust store to every NSS database above as "Signet root ID" with trust ",C," (a CA for e-mail signers; --trust-roots-for-web: "C,C,", for web sites too), to $GNUPGHOME/trustlist.txt (flag S, between marks) and to gpgsm's keybox. A root you already have there is left as it is. What it adds is recorded ($XDG_STATE_HOME/signet/setup-roots), and --undo takes out exactly that.
        """
    )

    @Flag(name: .long, help: "Remove everything `signet setup` registered.")
    var undo = false

    @Flag(name: .customLong("trust-roots"), help: "Also add the root CAs Signet trusts (`signet trust list`) to each NSS database, gpg-agent's trustlist and gpgsm's keybox, as trust anchors for e-mail.")
    var trustRoots = false

    @Flag(name: .customLong("trust-roots-for-web"), help: "As --trust-roots, and trust them in NSS for web sites (TLS servers) as well, such as the organisation's webmail.")
    var trustRootsForWeb = false

    @Flag(name: .long, help: "Print what would be done; change nothing.")
    var dryRun = false

    @Option(name: .long, help: ArgumentHelp(
        "Only write p11-kit's system-wide module file for every user, e.g. /usr/share/p11-kit/modules/signet.module ('-': print it); with --undo, remove it.",
        valueName: "path"))
    var systemFile: String?

    func run() throws {
        let environment = ProcessEnvironment.all()
        let setup = Setup(environment: environment, dryRun: dryRun)
        if !dryRun && !(systemFile == "-" && !undo) { try Self.lock(environment) }
        let outcomes: [Setup.Outcome]
        if let systemFile {
            if systemFile == "-" && !undo {
                Console.out(Setup.moduleFileText(module: try module(), systemWide: true))
                return
            }
            outcomes = [undo ? setup.removeSystemFile(systemFile) : setup.writeSystemFile(systemFile, module: try module())]
        } else {
            if undo {
                outcomes = setup.untrustRoots() + setup.removeAll()
            } else {
                outcomes = setup.registerAll(module: try module())
                    + (trustRoots || trustRootsForWeb ? setup.trustRoots(Self.signetRoots(), web: trustRootsForWeb) : [])
            }
        }
        try Self.report(outcomes, again: "signet setup\(undo ? " --undo" : "")")
    }

    /// `cert import`'s offer: `roots` (certificates Signet trusts) added to the programs' NSS databases, gpg-agent's
    /// trustlist and gpgsm's keybox for e-mail, as `signet setup --trust-roots` adds them (and `--undo` takes them out).
    /// Asks first unless `ask` is false; with no terminal to ask on, says how to do it instead and changes nothing.
    static func trustInPrograms(_ roots: [Certificate], ask: Bool, newlyTrusted: Bool) throws {
        guard !roots.isEmpty else { return }
        if ask {
            let names = roots.map(\.subject).joined(separator: "; ")
            let question = "Also trust \(names) in Thunderbird, Firefox, Chromium and gpgsm, as `signet setup --trust-roots` does? [y/N] "
            guard let answer = Confirm.ask(question) else {
                if newlyTrusted {
                    Console.error(Console.safe("Note: your mail programs do not trust \(names) yet: run `signet setup --trust-roots` "
                                               + "(or import with --trust-roots-in-programs)."))
                }
                return
            }
            guard answer else { return }
        }
        let environment = ProcessEnvironment.all()
        try lock(environment)
        try report(Setup(environment: environment, dryRun: false).trustRoots(roots.map(root), web: false), again: "signet setup --trust-roots")
    }

    /// Setup's lock against a second setup at once, held until the process exits.
    private static func lock(_ environment: [String: String]) throws {
        if let refusal = SetupLock.acquire(SignetPaths(environment: environment).state + "/setup.lock") { throw CLIError(.failure, refusal) }
    }

    /// One line per target; a failure when any target failed, saying to run `again` once it is dealt with.
    private static func report(_ outcomes: [Setup.Outcome], again: String) throws {
        for outcome in outcomes { print(Console.safe("\(outcome.target): \(outcome.result)")) }
        let failed = outcomes.filter(\.failed).count
        guard failed == 0 else {
            throw CLIError(.failure, "\(failed) of \(outcomes.count) targets \(failed == 1 ? "was" : "were") left as \(failed == 1 ? "it was" : "they were") (see above); "
                + "run `\(again)` again once that is dealt with.")
        }
    }

    /// The self-signed roots in Signet's trust store.
    private static func signetRoots() -> [Setup.Root] {
        TrustStore().entries().map(\.certificate).filter(\.isSelfSigned).map(root)
    }

    private static func root(_ certificate: Certificate) -> Setup.Root {
        Setup.Root(id: TrustStore.id(certificate), subject: certificate.subject, der: certificate.der, pem: certificate.pem, sha1: certificate.sha1)
    }

    /// The module to register (`FrontEndModule.locate`), its failure as the CLI's error.
    private func module() throws(CLIError) -> String {
        do throws(SetupError) { return try FrontEndModule.locate() } catch { throw CLIError(.failure, error.message) }
    }
}

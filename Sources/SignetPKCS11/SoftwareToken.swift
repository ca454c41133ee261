#if canImport(Glibc)
import Glibc
#endif
import CP11Kit
import SignetCore
import Synchronization

/// Serialises software-token creation in this process: two creators would
/// otherwise both pick SoftHSM2's one spare slot.
private let creationLock = Mutex(())

/// SoftHSM2 software tokens under Signet's data directory, for trying Signet
/// out and for tests. They are created only on request and always marked as
/// software (`Token.isSoftware`).
public enum SoftwareTokens {
    /// Where Debian and other distributions install the SoftHSM2 module.
    public static let modulePaths = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]

    /// The lengths in bytes SoftHSM2 takes for the access code and the SO code
    /// (its MIN_PIN_LEN and MAX_PIN_LEN, reported as ulMinPinLen and ulMaxPinLen).
    public static let codeLengths = 4...255

    /// Errors creating a software token.
    public enum Failure: Error, CustomStringConvertible {
        case softHSMMissing
        case cannotWrite(String)
        case noFreeSlot
        case labelTaken(String)
        case codeLength
        case token(PKCS11Error)

        public var description: String {
            switch self {
            case .softHSMMissing: "SoftHSM2 is not installed; install it with `apt-get install softhsm2`"
            case .cannotWrite(let path): "could not write \(path); check that the directory is writable"
            case .noFreeSlot: "SoftHSM2 offers no free slot for a new token"
            case .labelTaken(let label): "a software token labelled \"\(label)\" exists already; choose another --label"
            case .codeLength: "the access code and the administrator (SO) code must each be \(codeLengths.lowerBound) to \(codeLengths.upperBound) bytes long"
            case .token(let error): error.description
            }
        }
    }

    /// Points SoftHSM2 at Signet's software tokens for this process, unless
    /// the user set `SOFTHSM2_CONF` themselves. Call before loading modules.
    /// - Returns: the configuration file in effect, if any.
    @discardableResult
    public static func prepareEnvironment(paths: SignetPaths = .current) -> String? {
        if let existing = ProcessEnvironment.value("SOFTHSM2_CONF") { return existing }
        guard FileIO.exists(paths.softwareTokenConfig) else { return nil }
        setenv("SOFTHSM2_CONF", paths.softwareTokenConfig, 1)
        return paths.softwareTokenConfig
    }

    /// Writes Signet's SoftHSM2 configuration (token directory under the data directory) if missing,
    /// and points this process at it unless `SOFTHSM2_CONF` is set.
    /// - Throws: `Failure.cannotWrite`.
    public static func ensureConfiguration(paths: SignetPaths = .current) throws(Failure) {
        if ProcessEnvironment.value("SOFTHSM2_CONF") != nil { return }
        guard FileIO.makeDirectories(paths.softwareTokenDirectory) else { throw .cannotWrite(paths.softwareTokenDirectory) }
        if !FileIO.exists(paths.softwareTokenConfig) {
            let text = """
            # SoftHSM2 configuration written by `signet token init --software`.
            directories.tokendir = \(paths.softwareTokenDirectory)
            objectstore.backend = file
            log.level = ERROR
            slots.removable = false

            """
            guard FileIO.writeAtomically(paths.softwareTokenConfig, text: text) else { throw .cannotWrite(paths.softwareTokenConfig) }
        }
        setenv("SOFTHSM2_CONF", paths.softwareTokenConfig, 1)
    }

    /// The SoftHSM2 module among `context`'s modules.
    public static func module(in context: PKCS11Context) -> PKCS11Module? {
        context.modules.first { $0.info.manufacturer.hasPrefix("SoftHSM") || $0.path.contains("libsofthsm2") }
    }

    /// The installed SoftHSM2 module path, if any.
    public static func installedModulePath() -> String? { modulePaths.first(where: FileIO.exists) }

    /// Creates and initialises a new software token: SO code, then user code.
    ///
    /// `context` must have been created after `ensureConfiguration` so that
    /// SoftHSM2 reads the right configuration.
    /// - Returns: the new token.
    /// - Throws: `Failure`.
    public static func create(in context: PKCS11Context, label: String, userCode: borrowing SecretBytes, soCode: borrowing SecretBytes) throws(Failure) -> Token {
        try creationLock.withLock { (_) throws(Failure) -> Token in
            try createLocked(in: context, label: label, userCode: userCode, soCode: soCode)
        }
    }

    private static func createLocked(in context: PKCS11Context, label: String, userCode: borrowing SecretBytes, soCode: borrowing SecretBytes) throws(Failure) -> Token {
        guard codeLengths.contains(userCode.count), codeLengths.contains(soCode.count) else { throw .codeLength }
        guard let module = module(in: context) else { throw .softHSMMissing }
        if context.tokens().contains(where: { $0.module === module && $0.info.label == label }) {
            throw .labelTaken(label)
        }
        var freeSlot: CK_SLOT_ID?
        do throws(PKCS11Error) {
            for slot in try module.slotIDs(tokenPresent: true) where !(try module.tokenInfo(slot).flags.contains(.tokenInitialized)) {
                freeSlot = slot
                break
            }
        } catch {
            throw .token(error)
        }
        guard let freeSlot else { throw .noFreeSlot }
        do throws(PKCS11Error) {
            try module.initToken(slot: freeSlot, soCode: soCode, label: label)
            // SoftHSM2 moves an initialised token to a new slot ID: find it by label.
            guard let token = context.tokens().first(where: { $0.module === module && $0.info.label == label }) else {
                throw PKCS11Error.tokenNotFound("token=\(label)")
            }
            let session = try token.openSession(readWrite: true)
            try session.login(.securityOfficer, code: soCode)
            try session.initPIN(userCode)
            try session.logout()
            return context.tokens().first(where: { $0.module === module && $0.info.serialNumber == token.info.serialNumber }) ?? token
        } catch {
            throw .token(error)
        }
    }
}

/// What the agent reports about the token layers it alone loads (PKCS#11
/// modules, slots and flags, PC/SC readers, library versions), so the command
/// line can show them without loading p11-kit or pcsc-lite itself.
/// Values and their bytes only; the layout is in `docs/protocol.md`.

/// A PKCS#11 module as the agent loaded it, with what it says about itself (`CK_INFO`).
public struct ModuleEntry: Sendable, Equatable {
    public var name: String
    public var path: String
    public var description: String
    public var libraryVersion: String
    public var manufacturer: String
    public var cryptokiVersion: String

    public init(name: String, path: String, description: String, libraryVersion: String, manufacturer: String, cryptokiVersion: String) {
        self.name = name; self.path = path; self.description = description
        self.libraryVersion = libraryVersion; self.manufacturer = manufacturer; self.cryptokiVersion = cryptokiVersion
    }

    func write(_ w: WireWriter) {
        w.string(name); w.string(path); w.string(description); w.string(libraryVersion); w.string(manufacturer); w.string(cryptokiVersion)
    }
    static func read(_ r: inout WireReader) throws(WireError) -> ModuleEntry {
        ModuleEntry(name: try r.string(), path: try r.string(), description: try r.string(), libraryVersion: try r.string(),
                    manufacturer: try r.string(), cryptokiVersion: try r.string())
    }
}

/// A module the agent could not load, and why.
public struct ModuleFailure: Sendable, Equatable {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) { self.path = path; self.reason = reason }

    func write(_ w: WireWriter) { w.string(path); w.string(reason) }
    static func read(_ r: inout WireReader) throws(WireError) -> ModuleFailure {
        ModuleFailure(path: try r.string(), reason: try r.string())
    }
}

/// One code's state as the token's own flags report it (`CKF_USER_PIN_*` or `CKF_SO_PIN_*`).
public struct CodeFlags: Sendable, Equatable {
    public var countLow: Bool
    public var finalTry: Bool
    public var locked: Bool
    public var toBeChanged: Bool
    /// Entered on the reader's PIN pad, not sent by the host.
    public var protectedAuthenticationPath: Bool
    public var minLength: UInt32?
    public var maxLength: UInt32?

    public init(countLow: Bool, finalTry: Bool, locked: Bool, toBeChanged: Bool, protectedAuthenticationPath: Bool,
                minLength: UInt32?, maxLength: UInt32?) {
        self.countLow = countLow; self.finalTry = finalTry; self.locked = locked; self.toBeChanged = toBeChanged
        self.protectedAuthenticationPath = protectedAuthenticationPath; self.minLength = minLength; self.maxLength = maxLength
    }

    func write(_ w: WireWriter) {
        w.bool(countLow); w.bool(finalTry); w.bool(locked); w.bool(toBeChanged); w.bool(protectedAuthenticationPath)
        w.optional(minLength, w.u32); w.optional(maxLength, w.u32)
    }
    static func read(_ r: inout WireReader) throws(WireError) -> CodeFlags {
        func u32(_ r: inout WireReader) throws(WireError) -> UInt32 { try r.u32() }
        return CodeFlags(countLow: try r.bool(), finalTry: try r.bool(), locked: try r.bool(), toBeChanged: try r.bool(),
                         protectedAuthenticationPath: try r.bool(), minLength: try r.optional(u32), maxLength: try r.optional(u32))
    }
}

/// A token as its module describes it, read without logging in: what `signet tokens` shows.
public struct TokenDetail: Sendable, Equatable {
    /// The token as `listTokens` gives it: URI, identity, software mark and access-code state.
    public var entry: TokenEntry
    /// The slot's description.
    public var slot: String
    public var module: ModuleEntry
    /// The token's `CKF_*` flags by name.
    public var flags: [String]
    public var userCode: CodeFlags
    public var soCode: CodeFlags

    public init(entry: TokenEntry, slot: String, module: ModuleEntry, flags: [String], userCode: CodeFlags, soCode: CodeFlags) {
        self.entry = entry; self.slot = slot; self.module = module; self.flags = flags; self.userCode = userCode; self.soCode = soCode
    }

    func write(_ w: WireWriter) {
        entry.write(w); w.string(slot); module.write(w); w.array(flags, w.string); userCode.write(w); soCode.write(w)
    }
    static func read(_ r: inout WireReader) throws(WireError) -> TokenDetail {
        TokenDetail(entry: try TokenEntry.read(&r), slot: try r.string(), module: try ModuleEntry.read(&r),
                    flags: try r.array { (r: inout WireReader) throws(WireError) in try r.string() },
                    userCode: try CodeFlags.read(&r), soCode: try CodeFlags.read(&r))
    }
}

/// A smart-card reader as PC/SC reports it.
public struct ReaderEntry: Sendable, Equatable {
    public var name: String
    public var cardPresent: Bool
    /// The reader's `SCARD_STATE_*` flags in words ("present", "mute", …).
    public var state: [String]
    /// The card's ATR, when a card is in the reader.
    public var atr: [UInt8]?
    /// "usb", "nfc", "virtual" or "unknown".
    public var transport: String

    public init(name: String, cardPresent: Bool, state: [String], atr: [UInt8]?, transport: String) {
        self.name = name; self.cardPresent = cardPresent; self.state = state; self.atr = atr; self.transport = transport
    }

    func write(_ w: WireWriter) {
        w.string(name); w.bool(cardPresent); w.array(state, w.string); w.optional(atr, w.bytes); w.string(transport)
    }
    static func read(_ r: inout WireReader) throws(WireError) -> ReaderEntry {
        ReaderEntry(name: try r.string(), cardPresent: try r.bool(),
                    state: try r.array { (r: inout WireReader) throws(WireError) in try r.string() },
                    atr: try r.optional { (r: inout WireReader) throws(WireError) in try r.bytes() }, transport: try r.string())
    }
}

/// The versions of what the agent loaded, for `signet version` and `signet report`.
public struct AgentVersions: Sendable, Equatable {
    public var agentVersion: String
    /// Shared libraries by name ("p11-kit", "pcsc-lite") with their version and file, in words.
    public var libraries: [Library]
    public var modules: [ModuleEntry]
    public var moduleFailures: [ModuleFailure]

    /// One shared library the agent links.
    public struct Library: Sendable, Equatable {
        public var name: String
        public var version: String
        public init(name: String, version: String) { self.name = name; self.version = version }
    }

    public init(agentVersion: String, libraries: [Library], modules: [ModuleEntry], moduleFailures: [ModuleFailure]) {
        self.agentVersion = agentVersion; self.libraries = libraries; self.modules = modules; self.moduleFailures = moduleFailures
    }

    func write(_ w: WireWriter) {
        w.string(agentVersion)
        w.array(libraries) { w.string($0.name); w.string($0.version) }
        w.array(modules) { $0.write(w) }
        w.array(moduleFailures) { $0.write(w) }
    }
    static func read(_ r: inout WireReader) throws(WireError) -> AgentVersions {
        AgentVersions(agentVersion: try r.string(),
                      libraries: try r.array { (r: inout WireReader) throws(WireError) in Library(name: try r.string(), version: try r.string()) },
                      modules: try r.array(ModuleEntry.read), moduleFailures: try r.array(ModuleFailure.read))
    }
}

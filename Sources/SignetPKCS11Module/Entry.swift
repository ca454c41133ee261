#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import CSignetPKCS11Module
import SignetPKCS11Front
import SignetAgentProtocol
import SignetCore

// The PKCS#11 functions of libsignet-pkcs11.so (FunctionList.swift lists them). Each checks its
// arguments, works on `ModuleState` under its lock, and makes at most one agent request,
// with no lock held. See docs/pkcs11-module.md.

/// Runs `body` with the module's state, or answers `CKR_CRYPTOKI_NOT_INITIALIZED`.
@inline(__always)
private func withModule(_ body: (ModuleState) throws -> CK_RV) -> CK_RV {
    guard let state = Module.state else { return CKR_CRYPTOKI_NOT_INITIALIZED }
    do {
        return try body(state)
    } catch let error as ModuleError {
        return error.rv
    } catch {
        return CKR_GENERAL_ERROR
    }
}

/// Writes `text` into a fixed-size, blank-padded PKCS#11 text field (cut at a character boundary).
private func pad<T>(_ field: inout T, _ text: String) {
    withUnsafeMutableBytes(of: &field) { buffer in
        buffer.initializeMemory(as: UInt8.self, repeating: 0x20)
        var used = 0
        for character in text {
            let bytes = Array(String(character).utf8)
            guard used + bytes.count <= buffer.count else { break }
            for byte in bytes { buffer[used] = byte; used += 1 }
        }
    }
}

/// Copies `bytes` out the PKCS#11 way: the length always, the bytes when there is room.
private func output(_ bytes: [UInt8], to pointer: UnsafeMutablePointer<UInt8>?, length: UnsafeMutablePointer<CK_ULONG>) -> CK_RV {
    guard let pointer else {
        length.pointee = CK_ULONG(bytes.count)
        return CKR_OK
    }
    guard length.pointee >= CK_ULONG(bytes.count) else {
        length.pointee = CK_ULONG(bytes.count)
        return CKR_BUFFER_TOO_SMALL
    }
    bytes.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: bytes.count) }
    length.pointee = CK_ULONG(bytes.count)
    return CKR_OK
}

/// The slot `id` names. A slot id the module would list is accepted before any listing was asked
/// for (slot ids are stable across processes): an id not in the table reads the token list first.
/// - Throws: `CKR_SLOT_ID_INVALID` for an id that names no token the agent reports or reported.
private func slot(_ state: ModuleState, _ id: CK_SLOT_ID) throws(ModuleError) -> Slot {
    if let known = state.lock.withLock({ $0.slots[id] }) { return known }
    state.refreshTokens()
    guard let listed = state.lock.withLock({ $0.slots[id] }) else { throw ModuleError(CKR_SLOT_ID_INVALID) }
    return listed
}

private let version = CK_VERSION(major: SignetVersion.major, minor: SignetVersion.minor)

// MARK: General

func signet_C_Initialize(_ arguments: UnsafeMutableRawPointer?) -> CK_RV {
    if let arguments {
        let args = arguments.load(as: CK_C_INITIALIZE_ARGS.self)
        guard args.pReserved == nil else { return CKR_ARGUMENTS_BAD }
        // Either all the mutex callbacks or none. With or without CKF_OS_LOCKING_OK the module uses its
        // own pthread locks: it creates no threads and holds no lock across I/O, so the caller's are not needed.
        let given = [args.CreateMutex != nil, args.DestroyMutex != nil, args.LockMutex != nil, args.UnlockMutex != nil]
        guard given.allSatisfy({ $0 }) || given.allSatisfy({ !$0 }) else { return CKR_ARGUMENTS_BAD }
    }
    return Module.initialize()
}

func signet_C_Finalize(_ reserved: UnsafeMutableRawPointer?) -> CK_RV {
    guard reserved == nil else { return CKR_ARGUMENTS_BAD }
    return Module.finalize()
}

func signet_C_GetInfo(_ info: UnsafeMutablePointer<CK_INFO>?) -> CK_RV {
    withModule { _ in
        guard let info else { return CKR_ARGUMENTS_BAD }
        info.pointee.cryptokiVersion = CK_VERSION(major: 2, minor: 40)
        pad(&info.pointee.manufacturerID, "Signet")
        info.pointee.flags = 0
        pad(&info.pointee.libraryDescription, "Signet agent (signet-agent)")
        info.pointee.libraryVersion = version
        return CKR_OK
    }
}

// MARK: Slots and tokens

func signet_C_GetSlotList(_ tokenPresent: CK_BBOOL, _ list: UnsafeMutablePointer<CK_SLOT_ID>?, _ count: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        guard let count else { return CKR_ARGUMENTS_BAD }
        // The size query reads the list again; the call that fills it right after uses the same answer.
        state.refreshTokens(force: list == nil)
        let ids = state.lock.withLock { inner in
            inner.slots.values.filter { tokenPresent == 0 || $0.present }.map(\.id).sorted()
        }
        guard let list else {
            count.pointee = CK_ULONG(ids.count)
            return CKR_OK
        }
        guard count.pointee >= CK_ULONG(ids.count) else {
            count.pointee = CK_ULONG(ids.count)
            return CKR_BUFFER_TOO_SMALL
        }
        for (index, id) in ids.enumerated() { list[index] = id }
        count.pointee = CK_ULONG(ids.count)
        return CKR_OK
    }
}

func signet_C_GetSlotInfo(_ slotID: CK_SLOT_ID, _ info: UnsafeMutablePointer<CK_SLOT_INFO>?) -> CK_RV {
    withModule { state in
        guard let info else { return CKR_ARGUMENTS_BAD }
        state.refreshTokens()
        let slot = try slot(state, slotID)
        pad(&info.pointee.slotDescription, "Signet: \(slot.entry.label)")
        pad(&info.pointee.manufacturerID, "Signet")
        info.pointee.flags = CKF_REMOVABLE_DEVICE | (slot.present ? CKF_TOKEN_PRESENT : 0) | (slot.entry.software ? 0 : CKF_HW_SLOT)
        info.pointee.hardwareVersion = version
        info.pointee.firmwareVersion = version
        return CKR_OK
    }
}

func signet_C_GetTokenInfo(_ slotID: CK_SLOT_ID, _ info: UnsafeMutablePointer<CK_TOKEN_INFO>?) -> CK_RV {
    withModule { state in
        guard let info else { return CKR_ARGUMENTS_BAD }
        state.refreshTokens()
        let found = state.lock.withLock { inner -> (Slot, Int, Int)? in
            guard let slot = inner.slots[slotID] else { return nil }
            let sessions = inner.sessions.values.filter { $0.slot == slotID }
            return (slot, sessions.count, sessions.filter { $0.flags & CKF_RW_SESSION != 0 }.count)
        }
        guard let (slot, sessions, rwSessions) = found else { return CKR_SLOT_ID_INVALID }
        guard slot.present else { return CKR_TOKEN_NOT_PRESENT }
        let entry = slot.entry
        pad(&info.pointee.label, entry.label)
        pad(&info.pointee.manufacturerID, entry.manufacturer)
        pad(&info.pointee.model, entry.model)
        pad(&info.pointee.serialNumber, entry.serial)
        info.pointee.flags = Slots.tokenFlags(entry, hostCanPrompt: PromptPlace.hostCanPrompt)
        info.pointee.ulMaxSessionCount = csignet_infinite()
        info.pointee.ulSessionCount = CK_ULONG(sessions)
        info.pointee.ulMaxRwSessionCount = csignet_infinite()
        info.pointee.ulRwSessionCount = CK_ULONG(rwSessions)
        info.pointee.ulMaxPinLen = CK_ULONG(AgentProtocol.softwareTokenCodeLengths.upperBound)
        info.pointee.ulMinPinLen = 4
        info.pointee.ulTotalPublicMemory = csignet_unavailable()
        info.pointee.ulFreePublicMemory = csignet_unavailable()
        info.pointee.ulTotalPrivateMemory = csignet_unavailable()
        info.pointee.ulFreePrivateMemory = csignet_unavailable()
        info.pointee.hardwareVersion = version
        info.pointee.firmwareVersion = version
        pad(&info.pointee.utcTime, "")
        return CKR_OK
    }
}

func signet_C_WaitForSlotEvent(_ flags: CK_FLAGS, _ slot: UnsafeMutablePointer<CK_SLOT_ID>?, _ reserved: UnsafeMutableRawPointer?) -> CK_RV {
    withModule { state in
        guard let slot, reserved == nil else { return CKR_ARGUMENTS_BAD }
        // Blocking would hold the caller's thread on the agent; NSS polls instead when told so.
        guard flags & CKF_DONT_BLOCK != 0 else { return CKR_FUNCTION_NOT_SUPPORTED }
        state.refreshTokens()
        let changed = state.lock.withLock { inner -> CK_SLOT_ID? in
            for id in inner.slots.keys.sorted() {
                let present = inner.slots[id]!.present
                if inner.reportedPresence[id] != present {
                    let first = inner.reportedPresence[id] == nil
                    inner.reportedPresence[id] = present
                    if !(first && present) { return id }  // a slot present from the start is no event
                }
            }
            return nil
        }
        guard let changed else { return CKR_NO_EVENT }
        slot.pointee = changed
        return CKR_OK
    }
}

// MARK: Mechanisms

func signet_C_GetMechanismList(_ slotID: CK_SLOT_ID, _ list: UnsafeMutablePointer<CK_MECHANISM_TYPE>?,
                               _ count: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        _ = try slot(state, slotID)
        guard let count else { return CKR_ARGUMENTS_BAD }
        let table = Mechanisms.table
        guard let list else {
            count.pointee = CK_ULONG(table.count)
            return CKR_OK
        }
        guard count.pointee >= CK_ULONG(table.count) else {
            count.pointee = CK_ULONG(table.count)
            return CKR_BUFFER_TOO_SMALL
        }
        for (index, mechanism) in table.enumerated() { list[index] = mechanism.type }
        count.pointee = CK_ULONG(table.count)
        return CKR_OK
    }
}

func signet_C_GetMechanismInfo(_ slotID: CK_SLOT_ID, _ type: CK_MECHANISM_TYPE, _ info: UnsafeMutablePointer<CK_MECHANISM_INFO>?) -> CK_RV {
    withModule { state in
        _ = try slot(state, slotID)
        guard let info else { return CKR_ARGUMENTS_BAD }
        guard let found = Mechanisms.entry(type) else { return CKR_MECHANISM_INVALID }
        info.pointee = CK_MECHANISM_INFO(ulMinKeySize: found.minKeySize, ulMaxKeySize: found.maxKeySize, flags: found.flags)
        return CKR_OK
    }
}

// MARK: Sessions

func signet_C_OpenSession(_ slotID: CK_SLOT_ID, _ flags: CK_FLAGS, _ application: UnsafeMutableRawPointer?, _ notify: CK_NOTIFY?,
                          _ session: UnsafeMutablePointer<CK_SESSION_HANDLE>?) -> CK_RV {
    withModule { state in
        guard let session else { return CKR_ARGUMENTS_BAD }
        guard flags & CKF_SERIAL_SESSION != 0 else { return CKR_SESSION_PARALLEL_NOT_SUPPORTED }
        state.refreshTokens()
        _ = try slot(state, slotID)
        return state.lock.withLock { inner in
            guard let slot = inner.slots[slotID] else { return CKR_SLOT_ID_INVALID }
            guard slot.present else { return CKR_TOKEN_NOT_PRESENT }
            let handle = inner.nextSession
            inner.nextSession += 1
            inner.sessions[handle] = ModuleSession(slot: slotID, flags: flags, generation: inner.generation)
            session.pointee = handle
            return CKR_OK
        }
    }
}

func signet_C_CloseSession(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        state.lock.withLock { inner in
            guard inner.sessions.removeValue(forKey: session) != nil else { return CKR_SESSION_HANDLE_INVALID }
            inner.sessionObjects = inner.sessionObjects.filter { $0.value.session != session }
            return CKR_OK
        }
    }
}

func signet_C_CloseAllSessions(_ slotID: CK_SLOT_ID) -> CK_RV {
    withModule { state in
        _ = try slot(state, slotID)
        return state.lock.withLock { inner in
            let closing = Set(inner.sessions.filter { $0.value.slot == slotID }.keys)
            for handle in closing { inner.sessions[handle] = nil }
            inner.sessionObjects = inner.sessionObjects.filter { !closing.contains($0.value.session ?? 0) }
            return CKR_OK
        }
    }
}

func signet_C_GetSessionInfo(_ session: CK_SESSION_HANDLE, _ info: UnsafeMutablePointer<CK_SESSION_INFO>?) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        guard let info else { return CKR_ARGUMENTS_BAD }
        state.refreshTokens()
        let found = try state.session(session)
        let rw = found.flags & CKF_RW_SESSION != 0
        let user = state.loggedIn(found.slot)
        info.pointee = CK_SESSION_INFO(slotID: found.slot,
                                       state: user ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS) : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION),
                                       flags: found.flags, ulDeviceError: 0)
        return CKR_OK
    }
}

// MARK: Login

func signet_C_Login(_ session: CK_SESSION_HANDLE, _ userType: CK_USER_TYPE, _ pin: UnsafeMutablePointer<UInt8>?, _ pinLength: CK_ULONG) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        guard userType == CKU_USER else { return userType == CKU_SO ? CKR_FUNCTION_NOT_SUPPORTED : CKR_USER_TYPE_INVALID }
        state.refreshTokens(force: true)
        let entry = try state.lock.withLock { (inner) throws(ModuleError) -> TokenEntry in
            guard let slot = inner.slots[found.slot], slot.present else { throw ModuleError(CKR_DEVICE_REMOVED) }
            return slot.entry
        }
        if entry.unlocked {
            // Unlocked at the agent (by `signet unlock`, or another program): this program is logged in, and
            // CKR_OK rather than CKR_USER_ALREADY_LOGGED_IN (on which pkcs11-tool gives up). A code given now
            // is not checked, as `signet unlock` does not check it on an unlocked token: any program of this
            // user could use the unlocked token through the agent anyway.
            state.lock.withLock { _ = $0.loggedOut.remove(found.slot) }
            return CKR_OK
        }
        let request: AgentRequest
        if let pin {
            guard pinLength > 0, pinLength <= CK_ULONG(SecretBytes.maximumCount) else { return CKR_PIN_LEN_RANGE }
            request = .unlock(token: entry.uri, code: SharedSecret(copying: UnsafeRawBufferPointer(start: pin, count: Int(pinLength))), finalTry: false)
        } else {
            // The protected path (Thunderbird, Firefox): the agent asks the person itself, through pinentry on the
            // screen or terminal this program's environment names (sent with each connection). A person may take
            // a while, for up to three codes: the agent bounds each question (`pinentry-timeout-seconds`).
            request = .unlockAsking(token: entry.uri)
        }
        guard case .access(let outcome) = try state.call(request, timeout: pin == nil ? 900 : 60) else {
            return CKR_DEVICE_ERROR
        }
        state.refreshTokens(force: true)
        switch outcome.kind {
        case .unlocked, .alreadyUnlocked:
            state.lock.withLock { _ = $0.loggedOut.remove(found.slot) }
            return CKR_OK
        case .wrongCode: return CKR_PIN_INCORRECT
        case .locked, .cardFinalTry, .cardBlocked: return CKR_PIN_LOCKED
        case .invalidLength: return CKR_PIN_LEN_RANGE
        case .notPresented: return CKR_DEVICE_REMOVED
        case .failed, .ledgerDamaged: return CKR_DEVICE_ERROR
        case .cancelled, .timedOut, .nowhereToAsk: return CKR_FUNCTION_CANCELED
        }
    }
}

func signet_C_Logout(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        // This program stops using the token; the agent keeps it unlocked for the others that
        // share it (`signet lock` locks it for all). See docs/pkcs11-module.md.
        guard state.loggedIn(found.slot) else { return CKR_USER_NOT_LOGGED_IN }
        state.lock.withLock { _ = $0.loggedOut.insert(found.slot) }
        return CKR_OK
    }
}

// MARK: Objects

func signet_C_GetAttributeValue(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, _ template: UnsafeMutablePointer<CK_ATTRIBUTE>?,
                                _ count: CK_ULONG) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        let n = try Arguments.templateCount(template, count)
        let found = try state.object(object, session: session)
        guard let template else { return CKR_OK }
        var result = CKR_OK
        for index in 0..<n {
            switch found.attributes[template[index].type] {
            case .bytes(let value)?:
                if let destination = template[index].pValue {
                    if template[index].ulValueLen >= CK_ULONG(value.count) {
                        value.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: value.count) }
                        template[index].ulValueLen = CK_ULONG(value.count)
                    } else {
                        template[index].ulValueLen = csignet_unavailable()
                        if result == CKR_OK { result = CKR_BUFFER_TOO_SMALL }
                    }
                } else {
                    template[index].ulValueLen = CK_ULONG(value.count)
                }
            case .sensitive?:
                template[index].ulValueLen = csignet_unavailable()
                result = CKR_ATTRIBUTE_SENSITIVE
            case nil:
                template[index].ulValueLen = csignet_unavailable()
                if result != CKR_ATTRIBUTE_SENSITIVE { result = CKR_ATTRIBUTE_TYPE_INVALID }
            }
        }
        return result
    }
}

func signet_C_FindObjectsInit(_ session: CK_SESSION_HANDLE, _ template: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ count: CK_ULONG) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        guard found.find == nil else { return CKR_OPERATION_ACTIVE }
        let wanted = try Arguments.template(template, count)
        let tokenObjects = try state.objects(found.slot)
        let own = state.lock.withLock { inner in inner.sessionObjects.values.filter { $0.session == session } }
        let results = (tokenObjects + own).filter { $0.matches(wanted) }.map(\.handle)
        try state.updateSession(session) { $0.find = (results, 0) }
        return CKR_OK
    }
}

func signet_C_FindObjects(_ session: CK_SESSION_HANDLE, _ objects: UnsafeMutablePointer<CK_OBJECT_HANDLE>?, _ maximum: CK_ULONG,
                          _ count: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        guard let count, objects != nil || maximum == 0 else { return CKR_ARGUMENTS_BAD }
        guard found.find != nil else { return CKR_OPERATION_NOT_INITIALIZED }
        // Up to `maximum` (any CK_ULONG: ULONG_MAX means "all there are").
        let limit = maximum > CK_ULONG(Int.max) ? Int.max : Int(maximum)
        var n = 0
        try state.updateSession(session) { found in
            guard var find = found.find else { return }
            while n < limit, find.position < find.results.count {
                objects![n] = find.results[find.position]
                n += 1
                find.position += 1
            }
            found.find = find
        }
        count.pointee = CK_ULONG(n)
        return CKR_OK
    }
}

func signet_C_FindObjectsFinal(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        guard try state.session(session).find != nil else { return CKR_OPERATION_NOT_INITIALIZED }
        try state.updateSession(session) { $0.find = nil }
        return CKR_OK
    }
}

func signet_C_GetObjectSize(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, _ size: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        _ = try state.object(object, session: session)
        guard let size else { return CKR_ARGUMENTS_BAD }
        size.pointee = csignet_unavailable()
        return CKR_OK
    }
}

func signet_C_DestroyObject(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        return state.lock.withLock { inner in
            // Only the session keys this module derived; token objects are deleted with `signet`.
            if inner.sessionObjects.removeValue(forKey: object) != nil { return CKR_OK }
            return inner.handles.values.contains(object) ? CKR_ACTION_PROHIBITED : CKR_OBJECT_HANDLE_INVALID
        }
    }
}

// MARK: Signing

/// The key `handle` names for an operation in `session`, with this program logged in for a private key.
/// - Throws: `CKR_SESSION_HANDLE_INVALID`; `CKR_KEY_HANDLE_INVALID` for a handle that names no object
///   (the functions that take a key answer that, not `CKR_OBJECT_HANDLE_INVALID`); `CKR_USER_NOT_LOGGED_IN`.
private func operationKey(_ state: ModuleState, _ session: CK_SESSION_HANDLE, _ handle: CK_OBJECT_HANDLE) throws(ModuleError) -> (ModuleSession, ModuleObject) {
    let found = try state.session(session)
    let object: ModuleObject
    do throws(ModuleError) {
        object = try state.object(handle, session: session)
    } catch {
        throw error.rv == CKR_OBJECT_HANDLE_INVALID ? ModuleError(CKR_KEY_HANDLE_INVALID) : error
    }
    if object.objectClass == CKO_PRIVATE_KEY, !state.loggedIn(found.slot) {
        state.refreshTokens()
        guard state.loggedIn(found.slot) else { throw ModuleError(CKR_USER_NOT_LOGGED_IN) }
    }
    return (found, object)
}

/// Ends the session's signing operation (every answer but `CKR_BUFFER_TOO_SMALL` and a length query does).
private func endSign(_ state: ModuleState, _ session: CK_SESSION_HANDLE) { try? state.updateSession(session) { $0.sign = nil } }
private func endDecrypt(_ state: ModuleState, _ session: CK_SESSION_HANDLE) { try? state.updateSession(session) { $0.decrypt = nil } }

func signet_C_SignInit(_ session: CK_SESSION_HANDLE, _ mechanism: UnsafeMutablePointer<CK_MECHANISM>?, _ key: CK_OBJECT_HANDLE) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        guard let mechanism else { return CKR_ARGUMENTS_BAD }
        guard found.sign == nil else { return CKR_OPERATION_ACTIVE }
        _ = try Mechanisms.entry(mechanism.pointee.mechanism, for: CKF_SIGN)
        let (_, object) = try operationKey(state, session, key)
        let operation = try SignOperation(mechanism: mechanism.pointee, key: object)
        try state.updateSession(session) { $0.sign = operation }
        return CKR_OK
    }
}

/// Signs the operation's data at the agent: one request. Every answer ends the operation except
/// `CKR_BUFFER_TOO_SMALL` and a successful length query (PKCS#11 2.40, `C_Sign` and `C_SignFinal`).
private func finishSign(_ state: ModuleState, _ session: CK_SESSION_HANDLE, single input: UnsafeRawBufferPointer?,
                        _ signature: UnsafeMutablePointer<UInt8>?, _ length: UnsafeMutablePointer<CK_ULONG>?) throws(ModuleError) -> CK_RV {
    let found = try state.session(session)
    guard let operation = found.sign else { return CKR_OPERATION_NOT_INITIALIZED }
    var ends = true
    defer { if ends { endSign(state, session) } }
    guard let length else { return CKR_ARGUMENTS_BAD }
    // C_Sign cannot finish a multi-part signature (C_SignUpdate was called): it ends it.
    if input != nil, operation.parts { return CKR_OPERATION_ACTIVE }
    // Checked before a length query, so that the query does not promise a signature the input cannot have.
    try operation.check(input)
    let expected = operation.key.signatureLength
    // A length query, or a buffer too small, answers without asking the agent and keeps the operation.
    guard let signature, length.pointee >= CK_ULONG(expected) else {
        length.pointee = CK_ULONG(expected)
        ends = false
        return signature == nil ? CKR_OK : CKR_BUFFER_TOO_SMALL
    }
    let response: AgentResponse
    do throws(ModuleError) {
        response = try state.call(.sign(key: operation.key.uri, mechanism: operation.wire, data: operation.agentInput(input)))
    } catch {
        if error.rv == CKR_USER_NOT_LOGGED_IN { state.noteLocked(found.slot) }
        throw error
    }
    guard case .signature(let bytes) = response else { return CKR_DEVICE_ERROR }
    return output(bytes, to: signature, length: length)
}

func signet_C_Sign(_ session: CK_SESSION_HANDLE, _ data: UnsafeMutablePointer<UInt8>?, _ dataLength: CK_ULONG,
                   _ signature: UnsafeMutablePointer<UInt8>?, _ length: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        guard try state.session(session).sign != nil else { return CKR_OPERATION_NOT_INITIALIZED }
        let input: UnsafeRawBufferPointer
        do throws(ModuleError) {
            input = try Arguments.buffer(data, dataLength)
        } catch {
            endSign(state, session)
            throw error
        }
        return try finishSign(state, session, single: input, signature, length)
    }
}

func signet_C_SignUpdate(_ session: CK_SESSION_HANDLE, _ part: UnsafeMutablePointer<UInt8>?, _ partLength: CK_ULONG) -> CK_RV {
    withModule { state in
        // Raw RSA and ECDSA take their one digest in parts too (as SoftHSM2 does): it is only joined here.
        guard try state.session(session).sign != nil else { return CKR_OPERATION_NOT_INITIALIZED }
        var result = CKR_OK
        try state.updateSession(session) { session in
            // Any error ends the operation (PKCS#11 2.40, C_SignUpdate).
            do throws(ModuleError) {
                try session.sign?.update(try Arguments.buffer(part, partLength))
            } catch {
                session.sign = nil
                result = error.rv
            }
        }
        return result
    }
}

func signet_C_SignFinal(_ session: CK_SESSION_HANDLE, _ signature: UnsafeMutablePointer<UInt8>?, _ length: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in try finishSign(state, session, single: nil, signature, length) }
}

// MARK: Decryption

func signet_C_DecryptInit(_ session: CK_SESSION_HANDLE, _ mechanism: UnsafeMutablePointer<CK_MECHANISM>?, _ key: CK_OBJECT_HANDLE) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        guard let mechanism else { return CKR_ARGUMENTS_BAD }
        guard found.decrypt == nil else { return CKR_OPERATION_ACTIVE }
        _ = try Mechanisms.entry(mechanism.pointee.mechanism, for: CKF_DECRYPT)
        let (_, object) = try operationKey(state, session, key)
        let operation = try DecryptOperation(mechanism: mechanism.pointee, key: object)
        try state.updateSession(session) { $0.decrypt = operation }
        return CKR_OK
    }
}

func signet_C_Decrypt(_ session: CK_SESSION_HANDLE, _ data: UnsafeMutablePointer<UInt8>?, _ dataLength: CK_ULONG,
                      _ plain: UnsafeMutablePointer<UInt8>?, _ length: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        guard let operation = found.decrypt else { return CKR_OPERATION_NOT_INITIALIZED }
        // Every answer ends the operation except CKR_BUFFER_TOO_SMALL and a length query (PKCS#11 2.40, C_Decrypt).
        var ends = true
        defer { if ends { endDecrypt(state, session) } }
        guard let length, data != nil || dataLength == 0 else { return CKR_ARGUMENTS_BAD }
        let result: SharedSecret
        if let pending = operation.pending {
            result = pending
        } else {
            // The length is checked before any request: the token is not asked what the module can tell.
            try operation.check(ciphertextLength: dataLength)
            if plain == nil {
                length.pointee = CK_ULONG(operation.maximumLength)
                ends = false
                return CKR_OK
            }
            let input = Array(try Arguments.buffer(data, dataLength))
            switch operation.kind {
            case .rsa(let wire):
                let response: AgentResponse
                do throws(ModuleError) {
                    response = try state.call(.decrypt(key: operation.key.uri, mechanism: wire, ciphertext: input))
                } catch {
                    if error.rv == CKR_USER_NOT_LOGGED_IN { state.noteLocked(found.slot) }
                    // The agent's data-invalid: the token refused this ciphertext (its padding, or not for this key).
                    throw error.rv == CKR_DATA_INVALID ? ModuleError(CKR_ENCRYPTED_DATA_INVALID) : error
                }
                guard case .plaintext(var bytes) = response else { return CKR_DEVICE_ERROR }
                result = SharedSecret(SecretBytes(copying: bytes))
                bytes.withUnsafeMutableBytes { SecretBytes.wipe($0) }
            case .aesUnwrap(let iv):
                result = try KeyUnwrap.unwrap(kek: operation.key.secret!, wrapped: input, iv: iv)
            }
        }
        guard let plain, length.pointee >= CK_ULONG(result.count) else {
            // Kept for the next call with a larger buffer: the token is not asked twice.
            length.pointee = CK_ULONG(result.count)
            try state.updateSession(session) { $0.decrypt?.pending = result }
            ends = false
            return plain == nil ? CKR_OK : CKR_BUFFER_TOO_SMALL
        }
        result.use { secret in secret.withUnsafeBytes { plain.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: $0.count) } }
        length.pointee = CK_ULONG(result.count)
        return CKR_OK
    }
}

// MARK: Key agreement

func signet_C_DeriveKey(_ session: CK_SESSION_HANDLE, _ mechanism: UnsafeMutablePointer<CK_MECHANISM>?, _ baseKey: CK_OBJECT_HANDLE,
                        _ template: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ count: CK_ULONG, _ key: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        guard let mechanism, let key else { return CKR_ARGUMENTS_BAD }
        let given = try Arguments.template(template, count)
        let entry = try Mechanisms.entry(mechanism.pointee.mechanism, for: CKF_DERIVE)
        let (found, object) = try operationKey(state, session, baseKey)
        try KeyCheck.check(object, for: entry, usages: .derive)
        guard let parameter = mechanism.pointee.pParameter,
              mechanism.pointee.ulParameterLen == CK_ULONG(MemoryLayout<CK_ECDH1_DERIVE_PARAMS>.size) else { return CKR_MECHANISM_PARAM_INVALID }
        let params = parameter.loadUnaligned(as: CK_ECDH1_DERIVE_PARAMS.self)
        let kdfHash = X963.hash(forKDF: params.kdf)
        guard params.kdf == CKD_NULL || kdfHash != nil else { return CKR_MECHANISM_PARAM_INVALID }
        let fieldBytes = (object.bits + 7) / 8
        // Raw or inside an OCTET STRING: NSS tries both (pk11_PubDeriveECKeyWithKDF). A length no point
        // or SharedInfo has, or one without its buffer, is a bad parameter.
        let publicData, sharedInfo: [UInt8]
        do throws(ModuleError) {
            publicData = try Arguments.bytes(UnsafeMutableRawPointer(params.pPublicData), params.ulPublicDataLen, limit: 4 * fieldBytes + 16, tooLong: CKR_MECHANISM_PARAM_INVALID)
            sharedInfo = try Arguments.bytes(UnsafeMutableRawPointer(params.pSharedData), params.ulSharedDataLen, limit: 4096, tooLong: CKR_MECHANISM_PARAM_INVALID)
        } catch {
            return CKR_MECHANISM_PARAM_INVALID
        }
        guard let point = DER.uncompressedPoint(publicData, fieldLength: fieldBytes) else { return CKR_MECHANISM_PARAM_INVALID }

        // The new key's template: class, type, length and what it may do.
        var attributes: [CK_ATTRIBUTE_TYPE: AttributeValue] = [
            CKA_CLASS: .ulong(CKO_SECRET_KEY), CKA_KEY_TYPE: .ulong(CKK_GENERIC_SECRET), CKA_TOKEN: .bool(false),
            CKA_PRIVATE: .bool(true), CKA_MODIFIABLE: .bool(false), CKA_LABEL: .bytes([]), CKA_ID: .bytes([]),
            CKA_SENSITIVE: .bool(true), CKA_EXTRACTABLE: .bool(false), CKA_LOCAL: .bool(false), CKA_DERIVE: .bool(false),
            CKA_ENCRYPT: .bool(false), CKA_DECRYPT: .bool(false), CKA_WRAP: .bool(false), CKA_UNWRAP: .bool(false),
            CKA_SIGN: .bool(false), CKA_VERIFY: .bool(false),
        ]
        var valueLength: Int?
        for (type, value) in given {
            switch type {
            case CKA_TOKEN where value.contains { $0 != 0 }: return CKR_TEMPLATE_INCONSISTENT  // session keys only
            case CKA_CLASS:
                guard value.count == MemoryLayout<CK_ULONG>.size, value.withUnsafeBytes({ $0.loadUnaligned(as: CK_ULONG.self) }) == CKO_SECRET_KEY
                else { return CKR_TEMPLATE_INCONSISTENT }
            case CKA_VALUE_LEN:
                guard value.count == MemoryLayout<CK_ULONG>.size else { return CKR_ATTRIBUTE_VALUE_INVALID }
                let requested = value.withUnsafeBytes { $0.loadUnaligned(as: CK_ULONG.self) }
                guard requested > 0, requested <= 64 else { return CKR_ATTRIBUTE_VALUE_INVALID }
                valueLength = Int(requested)
                attributes[CKA_VALUE_LEN] = .bytes(value)
            default:
                attributes[type] = .bytes(value)
            }
        }
        // Without a KDF the shared secret is the key; with one, as long as asked (or one hash).
        let length = valueLength ?? (kdfHash?.length ?? fieldBytes)
        if kdfHash == nil, length > fieldBytes { return CKR_TEMPLATE_INCONSISTENT }
        attributes[CKA_VALUE_LEN] = .ulong(CK_ULONG(length))

        // One request: the raw ECDH secret (the agent's derive, CKD_NULL); the KDF is run here.
        let response: AgentResponse
        do throws(ModuleError) {
            response = try state.call(.derive(key: object.uri, kdf: UInt64(CKD_NULL), sharedData: [], peerPoint: point))
        } catch {
            if error.rv == CKR_USER_NOT_LOGGED_IN { state.noteLocked(found.slot) }
            throw error
        }
        guard case .derived(var secret) = response, secret.count == fieldBytes else { return CKR_DEVICE_ERROR }
        defer { secret.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        var value = kdfHash.map { X963.derive(secret, hash: $0, sharedInfo: sharedInfo, length: length) } ?? Array(secret.prefix(length))
        defer { value.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        // The value is readable only when the caller asked for a key that is not sensitive and extractable.
        let readable = attributes[CKA_SENSITIVE].map { if case .bytes(let b) = $0 { !b.contains { $0 != 0 } } else { false } } ?? false
            && (attributes[CKA_EXTRACTABLE].map { if case .bytes(let b) = $0 { b.contains { $0 != 0 } } else { false } } ?? false)
        attributes[CKA_VALUE] = readable ? .bytes(value) : .sensitive
        attributes[CKA_ALWAYS_SENSITIVE] = .bool(!readable)
        attributes[CKA_NEVER_EXTRACTABLE] = .bool(!readable)
        return state.lock.withLock { inner in
            let handle = inner.nextHandle
            inner.nextHandle += 1
            inner.sessionObjects[handle] = ModuleObject(handle: handle, uri: "", objectClass: CKO_SECRET_KEY, keyType: nil, bits: length * 8,
                                                        usages: [], attributes: attributes,
                                                        secret: SharedSecret(SecretBytes(copying: value)), session: session)
            key.pointee = handle
            return CKR_OK
        }
    }
}

// MARK: Not offered

// Token and code administration is `signet`'s (so the lockout stays in one place); the module creates
// no objects, has no random generator, and offers no symmetric or digest operation of its own.
func signet_C_InitToken(_ s: CK_SLOT_ID, _ p: UnsafeMutablePointer<UInt8>?, _ l: CK_ULONG, _ label: UnsafeMutablePointer<UInt8>?) -> CK_RV { notSupported() }
func signet_C_InitPIN(_ s: CK_SESSION_HANDLE, _ p: UnsafeMutablePointer<UInt8>?, _ l: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_SetPIN(_ s: CK_SESSION_HANDLE, _ o: UnsafeMutablePointer<UInt8>?, _ ol: CK_ULONG, _ n: UnsafeMutablePointer<UInt8>?, _ nl: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_GetOperationState(_ s: CK_SESSION_HANDLE, _ p: UnsafeMutablePointer<UInt8>?, _ l: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_SetOperationState(_ s: CK_SESSION_HANDLE, _ p: UnsafeMutablePointer<UInt8>?, _ l: CK_ULONG, _ e: CK_OBJECT_HANDLE, _ a: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_CreateObject(_ s: CK_SESSION_HANDLE, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ o: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
func signet_C_CopyObject(_ s: CK_SESSION_HANDLE, _ o: CK_OBJECT_HANDLE, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ n: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
func signet_C_SetAttributeValue(_ s: CK_SESSION_HANDLE, _ o: CK_OBJECT_HANDLE, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_EncryptInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_Encrypt(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_EncryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_EncryptFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DecryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DecryptFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DigestInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?) -> CK_RV { notSupported() }
func signet_C_Digest(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DigestUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_DigestKey(_ s: CK_SESSION_HANDLE, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_DigestFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_SignRecoverInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_SignRecover(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_VerifyInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_Verify(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_VerifyUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_VerifyFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_VerifyRecoverInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_VerifyRecover(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DigestEncryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DecryptDigestUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_SignEncryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DecryptVerifyUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_GenerateKey(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ k: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
func signet_C_GenerateKeyPair(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ pt: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ pc: CK_ULONG, _ st: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ sc: CK_ULONG, _ pk: UnsafeMutablePointer<CK_OBJECT_HANDLE>?, _ sk: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
func signet_C_WrapKey(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ w: CK_OBJECT_HANDLE, _ k: CK_OBJECT_HANDLE, _ o: UnsafeMutablePointer<UInt8>?, _ ol: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_UnwrapKey(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ u: CK_OBJECT_HANDLE, _ w: UnsafeMutablePointer<UInt8>?, _ wl: CK_ULONG, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ k: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
// These four are offered in the function list with answers of their own, so a session or argument
// error ranks above "no generator" or "not parallel" (PKCS#11 2.40, 5.1.8: session-handle codes come
// before the other codes of a function).
func signet_C_SeedRandom(_ session: CK_SESSION_HANDLE, _ seed: UnsafeMutablePointer<UInt8>?, _ length: CK_ULONG) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        guard seed != nil || length == 0 else { return CKR_ARGUMENTS_BAD }
        return CKR_RANDOM_NO_RNG
    }
}

func signet_C_GenerateRandom(_ session: CK_SESSION_HANDLE, _ random: UnsafeMutablePointer<UInt8>?, _ length: CK_ULONG) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        guard random != nil || length == 0 else { return CKR_ARGUMENTS_BAD }
        return CKR_RANDOM_NO_RNG
    }
}

func signet_C_GetFunctionStatus(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        return CKR_FUNCTION_NOT_PARALLEL
    }
}

func signet_C_CancelFunction(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        return CKR_FUNCTION_NOT_PARALLEL
    }
}

/// The stub of a function the module does not offer. PKCS#11 2.40 (5.1.6, `CKR_FUNCTION_NOT_SUPPORTED`):
/// "this stub should simply return the value CKR_FUNCTION_NOT_SUPPORTED": it checks no session or argument.
private func notSupported() -> CK_RV { Module.state == nil ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_FUNCTION_NOT_SUPPORTED }

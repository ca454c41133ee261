#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import SignetPKCS11Front
import SignetAgentProtocol
import SignetCore

// Slots, tokens and mechanisms (PKCS#11 2.40, 5.5): the slot table is the library's (ModuleState).

func signet_C_GetSlotList(_ tokenPresent: CK_BBOOL, _ list: UnsafeMutablePointer<CK_SLOT_ID>?, _ count: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        guard let count else { return CKR_ARGUMENTS_BAD }
        // The size query reads the list again; the call that fills it right after uses the same answer.
        state.refreshTokens(force: list == nil)
        return outputList(state.slotIDs(tokenPresent: tokenPresent != 0), to: list, count: count)
    }
}

func signet_C_GetSlotInfo(_ slotID: CK_SLOT_ID, _ info: UnsafeMutablePointer<CK_SLOT_INFO>?) -> CK_RV {
    withModule { state in
        guard let info else { return CKR_ARGUMENTS_BAD }
        state.refreshTokens()
        let slot = try state.slot(slotID)
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
        let (entry, sessions, rwSessions) = try state.token(slotID)
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
        guard let changed = state.nextSlotEvent() else { return CKR_NO_EVENT }
        slot.pointee = changed
        return CKR_OK
    }
}

// MARK: Mechanisms

func signet_C_GetMechanismList(_ slotID: CK_SLOT_ID, _ list: UnsafeMutablePointer<CK_MECHANISM_TYPE>?,
                               _ count: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        _ = try state.slot(slotID)
        guard let count else { return CKR_ARGUMENTS_BAD }
        return outputList(Mechanisms.table.map(\.type), to: list, count: count)
    }
}

func signet_C_GetMechanismInfo(_ slotID: CK_SLOT_ID, _ type: CK_MECHANISM_TYPE, _ info: UnsafeMutablePointer<CK_MECHANISM_INFO>?) -> CK_RV {
    withModule { state in
        _ = try state.slot(slotID)
        guard let info else { return CKR_ARGUMENTS_BAD }
        guard let found = Mechanisms.entry(type) else { return CKR_MECHANISM_INVALID }
        info.pointee = CK_MECHANISM_INFO(ulMinKeySize: found.minKeySize, ulMaxKeySize: found.maxKeySize, flags: found.flags)
        return CKR_OK
    }
}

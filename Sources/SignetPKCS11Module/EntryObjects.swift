#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import SignetPKCS11Front
import SignetAgentProtocol
import SignetCore

// Objects (PKCS#11 2.40, 5.7): read-only, listed from the agent by the library (ModuleState.objects).

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
        try state.findInit(session, wanted: wanted)
        return CKR_OK
    }
}

func signet_C_FindObjects(_ session: CK_SESSION_HANDLE, _ objects: UnsafeMutablePointer<CK_OBJECT_HANDLE>?, _ maximum: CK_ULONG,
                          _ count: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        guard let count, objects != nil || maximum == 0 else { return CKR_ARGUMENTS_BAD }
        // Up to `maximum` (any CK_ULONG: ULONG_MAX means "all there are").
        let next = try state.findNext(session, limit: maximum > CK_ULONG(Int.max) ? Int.max : Int(maximum))
        for (index, handle) in next.enumerated() { objects![index] = handle }
        count.pointee = CK_ULONG(next.count)
        return CKR_OK
    }
}

func signet_C_FindObjectsFinal(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        try state.findFinal(session)
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
        // Only the session keys this module derived; token objects are deleted with `signet`.
        try state.destroySessionObject(object)
        return CKR_OK
    }
}

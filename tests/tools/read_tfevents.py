#!/usr/bin/python3
"""An independent reader of TensorBoard event files, for the tests (tests/loggers_test.cpp).

It shares no code with hpt's writer: every record's framing is checked with crcmod's
CRC-32C, and every Event is decoded by google.protobuf against the Event / Summary schema,
built here at runtime with descriptor_pb2 from TensorFlow's field numbers
(tensorflow/core/util/event.proto, framework/summary.proto, tensor.proto, tensor_shape.proto).

    read_tfevents.py FILE_OR_DIR...

Prints one JSON object: {"files": [...], "events": [...]}; each event has wall_time, step,
and file_version, session_log (its status number), scalars ({tag: value}) and texts
({tag: text}) when present. A directory means every file in it whose name contains
"tfevents", in name order (as TensorBoard reads them). Exits 1 with a message on stderr
when a record is cut short or a checksum or an Event does not decode.
"""
import json
import os
import struct
import sys

import crcmod.predefined
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

crc32c = crcmod.predefined.mkCrcFun("crc-32c")

F = descriptor_pb2.FieldDescriptorProto


def masked(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def schema():
    """The Event message class, with just the fields hpt writes (and their neighbours)."""
    f = descriptor_pb2.FileDescriptorProto(name="hpt_test_event.proto", package="tensorflow", syntax="proto3")

    def message(name, fields, parent=None):
        m = (parent.nested_type if parent else f.message_type).add(name=name)
        for number, fname, ftype, label, type_name in fields:
            fd = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                fd.type_name = type_name
        return m

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    shape = message("TensorShapeProto", [(3, "unknown_rank", F.TYPE_BOOL, opt, None)])
    message("Dim", [(1, "size", F.TYPE_INT64, opt, None), (2, "name", F.TYPE_STRING, opt, None)], shape)
    shape.field.add(name="dim", number=2, type=F.TYPE_MESSAGE, label=rep, type_name=".tensorflow.TensorShapeProto.Dim")
    message("TensorProto", [
        (1, "dtype", F.TYPE_INT32, opt, None),  # an enum (DataType) in TensorFlow: the same varint
        (2, "tensor_shape", F.TYPE_MESSAGE, opt, ".tensorflow.TensorShapeProto"),
        (8, "string_val", F.TYPE_BYTES, rep, None),
    ])
    meta = message("SummaryMetadata", [(2, "display_name", F.TYPE_STRING, opt, None)])
    message("PluginData", [(1, "plugin_name", F.TYPE_STRING, opt, None), (2, "content", F.TYPE_BYTES, opt, None)], meta)
    meta.field.add(name="plugin_data", number=1, type=F.TYPE_MESSAGE, label=opt,
                   type_name=".tensorflow.SummaryMetadata.PluginData")
    summary = message("Summary", [])
    message("Value", [
        (7, "node_name", F.TYPE_STRING, opt, None),
        (1, "tag", F.TYPE_STRING, opt, None),
        (9, "metadata", F.TYPE_MESSAGE, opt, ".tensorflow.SummaryMetadata"),
        (2, "simple_value", F.TYPE_FLOAT, opt, None),
        (8, "tensor", F.TYPE_MESSAGE, opt, ".tensorflow.TensorProto"),
    ], summary)
    summary.field.add(name="value", number=1, type=F.TYPE_MESSAGE, label=rep, type_name=".tensorflow.Summary.Value")
    message("SessionLog", [(1, "status", F.TYPE_INT32, opt, None), (2, "checkpoint_path", F.TYPE_STRING, opt, None),
                           (3, "msg", F.TYPE_STRING, opt, None)])
    message("Event", [
        (1, "wall_time", F.TYPE_DOUBLE, opt, None),
        (2, "step", F.TYPE_INT64, opt, None),
        (3, "file_version", F.TYPE_STRING, opt, None),
        (5, "summary", F.TYPE_MESSAGE, opt, ".tensorflow.Summary"),
        (6, "session_log", F.TYPE_MESSAGE, opt, ".tensorflow.SessionLog"),
    ])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    desc = pool.FindMessageTypeByName("tensorflow.Event")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def records(path):
    with open(path, "rb") as fh:
        data = fh.read()
    at = 0
    while at < len(data):
        if len(data) - at < 12:
            raise ValueError(f"{path}: record at byte {at} is cut short")
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        if length_crc != masked(header):
            raise ValueError(f"{path}: length checksum of the record at byte {at} is wrong")
        body = data[at + 12:at + 12 + length]
        footer = data[at + 12 + length:at + 16 + length]
        if len(body) != length or len(footer) != 4:
            raise ValueError(f"{path}: record at byte {at} is cut short")
        if struct.unpack("<I", footer)[0] != masked(body):
            raise ValueError(f"{path}: data checksum of the record at byte {at} is wrong")
        yield body
        at += 16 + length


def decode(paths):
    Event = schema()
    files, events = [], []
    for path in paths:
        files.append(os.path.basename(path))
        for body in records(path):
            e = Event()
            e.ParseFromString(body)
            out = {"file": os.path.basename(path), "wall_time": e.wall_time, "step": e.step}
            if e.file_version:
                out["file_version"] = e.file_version
            if e.HasField("session_log"):
                out["session_log"] = e.session_log.status
            scalars, texts = {}, {}
            for v in e.summary.value:
                if v.HasField("tensor"):
                    if v.metadata.plugin_data.plugin_name != "text" or v.tensor.dtype != 7:
                        raise ValueError(f"{path}: tensor summary {v.tag} is not a text summary")
                    texts[v.tag] = b"".join(v.tensor.string_val).decode("utf-8")
                else:
                    scalars[v.tag] = v.simple_value
            if scalars:
                out["scalars"] = scalars
            if texts:
                out["texts"] = texts
            events.append(out)
    return {"files": files, "events": events}


def main(argv):
    paths = []
    for arg in argv:
        if os.path.isdir(arg):
            paths += sorted(os.path.join(arg, n) for n in os.listdir(arg) if "tfevents" in n)
        else:
            paths.append(arg)
    try:
        result = decode(paths)
    except Exception as exc:  # noqa: BLE001 - any failure is the test's answer
        print(f"read_tfevents: {exc}", file=sys.stderr)
        return 1
    # NaN and infinity are not JSON: written as strings, so every value survives.
    def clean(x):
        if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
            return str(x)
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x
    print(json.dumps(clean(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Each real-part fixture is proven by really using the part."""

import json
import threading

from tests.parts import MicroPython


def test_micropython_runs_code_under_the_heap_cap(micropython: MicroPython) -> None:
    out = micropython.run(
        "import sys, gc\n"
        "print(sys.implementation.name)\n"
        "gc.collect()\n"
        "print(gc.mem_free())\n"
        "try:\n"
        "    b = bytearray(120000)\n"
        "    print('allocated')\n"
        "except MemoryError:\n"
        "    print('MemoryError')\n"
    ).stdout.split()
    assert out[0] == "micropython"
    assert 60_000 < int(out[1]) < 96 * 1024
    assert out[2] == "MemoryError"


def test_micropython_shim_folder_shadows_builtins(micropython: MicroPython, tmp_path) -> None:  # type: ignore[no-untyped-def]
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "machine.py").write_text("def unique_id():\n    return b'shim'\n")
    out = micropython.run("import machine\nprint(machine.unique_id())\nimport asyncio\n", path=[shims]).stdout
    assert out.strip() == "b'shim'"


def test_message_through_mosquitto(mqtt_broker: tuple[str, int]) -> None:
    import paho.mqtt.client as mqtt

    host, port = mqtt_broker
    got: list[bytes] = []
    subscribed = threading.Event()
    received = threading.Event()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda c, u, msg: (got.append(msg.payload), received.set())
    sub.connect(host, port)
    sub.subscribe("stedi/test/readings", qos=1)
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-pub")
        pub.connect(host, port)
        pub.loop_start()
        pub.publish("stedi/test/readings", json.dumps({"seq": 7}), qos=1).wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        assert received.wait(10)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert json.loads(got[0]) == {"seq": 7}


def test_dataframe_counted_in_local_spark(spark) -> None:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], "n long, s string")
    assert df.filter("n > 1").count() == 2

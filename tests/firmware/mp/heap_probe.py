# Boots the board from a config.json (app.start, as main.py does), lets a fake central
# sync and ack for a while, and prints the free heap after start and the lowest while
# streaming.  Used by the heap test and benchmarks/firmware.py.
import gc

import asyncio
import bluetooth

import app
import stedi_protocol as p


def main(config_path, stream_ms=3000):
    gc.collect()
    board = app.start(config_path)
    ble = bluetooth.BLE()
    gc.collect()
    after_start = gc.mem_free()
    lowest = [after_start]
    counts = [0, 0]

    async def central():
        task = asyncio.create_task(board.run())
        await asyncio.sleep_ms(200)
        ble.central_connect(1)
        ble.mtu_exchanged(247, 1)
        ble.central_write(board.link.h_control, p.encode_time_sync(1700000000000), 1)
        waited = 0
        while waited < stream_ms:
            await asyncio.sleep_ms(100)
            waited += 100
            last = -1
            for f in ble.take_notified(board.link.h_readings):
                header = p.decode_batch_header(f)  # checks the CRC; the readings are not needed here
                first, count = header[3], header[5]
                last = first + count - 1
                counts[0] += 1
                counts[1] += count
            f = header = None
            ble.take_notified(board.link.h_status)
            if last >= 0:
                ble.central_write(board.link.h_control, p.encode_ack(last, board.boot_id), 1)
            gc.collect()
            free = gc.mem_free()
            if free < lowest[0]:
                lowest[0] = free
        task.cancel()

    asyncio.run(central())
    print("HEAP after_start %d streaming_min %d frames %d readings %d capacity %d missed %d" % (
        after_start, lowest[0], counts[0], counts[1], board.ring.capacity, board.sampler.missed))

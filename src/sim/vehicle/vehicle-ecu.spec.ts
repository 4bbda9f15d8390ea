import { describe, expect, it } from 'vitest';
import { VehicleEcu } from './vehicle-ecu.js';

describe('VehicleEcu', () => {
  it('drives each actuator and leaves the others as they were', () => {
    const ecu = new VehicleEcu();
    expect(ecu.state).toEqual({ locked: true, trunkOpen: false, engineRunning: false });
    ecu.actuate('unlock');
    expect(ecu.state).toEqual({ locked: false, trunkOpen: false, engineRunning: false });
    ecu.actuate('trunk');
    expect(ecu.state).toEqual({ locked: false, trunkOpen: true, engineRunning: false });
    ecu.actuate('engine-start', { maxSpeedKmh: 105 });
    expect(ecu.state).toEqual({
      locked: false,
      trunkOpen: true,
      engineRunning: true,
      driveLimits: { maxSpeedKmh: 105 },
    });
    // Locking closes the trunk; the engine and its limits stay.
    ecu.actuate('lock');
    expect(ecu.state).toEqual({
      locked: true,
      trunkOpen: false,
      engineRunning: true,
      driveLimits: { maxSpeedKmh: 105 },
    });
    ecu.actuate('unlock');
    expect(ecu.state.driveLimits).toEqual({ maxSpeedKmh: 105 });
    expect(ecu.actuations).toBe(5);
  });

  it('drops the limits of the last start when the engine stops or starts unrestricted', () => {
    const ecu = new VehicleEcu();
    ecu.actuate('engine-start', { maxPowerPercent: 50 });
    ecu.stopEngine();
    expect(ecu.state).toEqual({ locked: true, trunkOpen: false, engineRunning: false });
    expect('driveLimits' in ecu.state).toBe(false);
    ecu.actuate('engine-start', { maxPowerPercent: 50 });
    ecu.actuate('engine-start');
    expect(ecu.state).toEqual({ locked: true, trunkOpen: false, engineRunning: true });
    expect('driveLimits' in ecu.state).toBe(false);
  });
});

// The converted file's trailer: the input's, with its description of the configuration section made to
// match the new configuration (QEMU's analyze-migration.py reads it); a fresh one when the input had none.
import { describeConfiguration, describeConfigurationObject } from "../format/encode.ts";
import { replaceTrailerConfiguration } from "../format/vmdesc.ts";
import type { ConvertPlan } from "./plan.ts";

export function trailerFor(plan: ConvertPlan): string {
  const { trailer } = plan.info;
  const text = trailer ? new TextDecoder().decode(plan.input.readAt(trailer.offset + 5, trailer.length)) : null;
  if (text === null) return describeConfiguration(plan.config, plan.pageSize);
  return replaceTrailerConfiguration(text, describeConfigurationObject(plan.config)) ?? text;
}

/** The azurerm backend location options `terraform backup` and `terraform restore` share. */
import type { AzurermLocation } from '../sources/terraform/azurerm.ts';
import { str, usageError, type OptionSpec, type OptionValues } from './command.ts';

export const AZURERM_OPTIONS: Record<string, OptionSpec> = {
  'azurerm-account': {
    type: 'string',
    arg: 'ACCOUNT',
    description: "the azurerm backend's storage_account_name",
  },
  'azurerm-container': {
    type: 'string',
    arg: 'CONTAINER',
    description: "the azurerm backend's container_name",
  },
  'azurerm-key': {
    type: 'string',
    arg: 'KEY',
    description: "the azurerm backend's key (the default workspace's blob)",
  },
};

/** The location the three options name, or undefined when none is given; some but not all is an error. */
export function azurermLocation(values: OptionValues): AzurermLocation | undefined {
  const account = str(values['azurerm-account']);
  const container = str(values['azurerm-container']);
  const key = str(values['azurerm-key']);
  if (!account && !container && !key) return undefined;
  if (!account || !container || !key)
    throw usageError(
      '--azurerm-account, --azurerm-container and --azurerm-key go together',
      'give all three',
    );
  return { account, container, key };
}
